// SPDX-License-Identifier: Apache-2.0
// nodemesh-cni: a chained CNI plugin (CNI SPEC 0.3.0 .. 1.1.0). The container runtime runs
// it after the pod's main plugin; on ADD it asks the node agent, over a Unix socket, to
// enroll the pod's network namespace and answers only once the agent says "enrolled" (or
// "not meshed"), so no connection of a meshed pod ever leaves before capture is on. It
// passes prevResult through unchanged. No Node, no shell, no allocation beyond fixed
// buffers: it runs on the host for every pod sandbox.
//
// Network configuration (stdin), beside the usual cniVersion/name/type/prevResult:
//   "agentSocket":       where the agent listens (default /run/nodemesh/agent/cni.sock)
//   "timeoutSeconds":    how long ADD waits for the agent's answer (default 20, 1..120)
//   "excludeNamespaces": pods of these namespaces are never asked about (default
//                        ["kube-system", "nodemesh-system"]), so the control plane and
//                        the cluster's system pods start while the agent is away
//                        (istio-cni's exclude_namespaces)
//
// The agent protocol: one JSON line each way.
//   -> {"command":"ADD|DEL|CHECK|STATUS","containerId":..,"netns":..,"namespace":..,"pod":..}
//   <- {"status":"enrolled|not-meshed|released|ok|refused","message":".."}
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONFIG (1 << 20) // a network config with a prevResult is a few KiB
#define MAX_REPLY 4096
#define MAX_REQUEST 8192
#define MAX_DEPTH 64
#define DEFAULT_SOCKET "/run/nodemesh/agent/cni.sock" // in the agent's state dir (a hostPath)
#define DEFAULT_TIMEOUT_S 20

// CNI SPEC "Error": well-known codes
enum { ERR_VERSION = 1, ERR_ENV = 4, ERR_IO = 5, ERR_DECODE = 6, ERR_CONFIG = 7, ERR_TRY_AGAIN = 11, ERR_UNAVAILABLE = 50 };
// plugin-specific codes start at 100
enum { ERR_REFUSED = 100 };

static const char *SUPPORTED[] = {"0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"};
#define NSUPPORTED (sizeof(SUPPORTED) / sizeof(SUPPORTED[0]))

typedef struct {
  const char *p;
  size_t n;
} span;

static char version[32] = "1.1.0"; // the config's cniVersion once read: errors answer in it

// ---- output ------------------------------------------------------------------------

static void put_json_string(FILE *f, const char *s, size_t n) {
  fputc('"', f);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c < 0x20)
      fprintf(f, "\\u%04x", c);
    else
      fputc(c, f);
  }
  fputc('"', f);
}

// "Plugins should output a JSON object with the following keys if they encounter an
// error: cniVersion, code, msg, details" on stdout, and exit non-zero
static int fail(int code, const char *msg, const char *fmt, ...) {
  char details[1024] = "";
  if (fmt) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(details, sizeof details, fmt, ap);
    va_end(ap);
  }
  printf("{\"cniVersion\":");
  put_json_string(stdout, version, strlen(version));
  printf(",\"code\":%d,\"msg\":", code);
  put_json_string(stdout, msg, strlen(msg));
  if (details[0]) {
    printf(",\"details\":");
    put_json_string(stdout, details, strlen(details));
  }
  printf("}\n");
  fflush(stdout);
  return 1;
}

// ---- a bounded JSON scanner: finds values, never builds a tree -------------------------

static const char *ws(const char *p, const char *end) {
  while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
  return p;
}

static const char *skip_string(const char *p, const char *end) {
  for (p++; p < end; p++) {
    if (*p == '\\') {
      if (++p >= end) return NULL;
    } else if (*p == '"') {
      return p + 1;
    } else if ((unsigned char)*p < 0x20) {
      return NULL;
    }
  }
  return NULL;
}

static const char *skip_value(const char *p, const char *end, int depth) {
  if (depth > MAX_DEPTH) return NULL;
  p = ws(p, end);
  if (p >= end) return NULL;
  if (*p == '"') return skip_string(p, end);
  if (*p == '{' || *p == '[') {
    char close = *p == '{' ? '}' : ']';
    p = ws(p + 1, end);
    if (p < end && *p == close) return p + 1;
    for (;;) {
      if (close == '}') {
        p = ws(p, end);
        if (p >= end || *p != '"' || !(p = skip_string(p, end))) return NULL;
        p = ws(p, end);
        if (p >= end || *p != ':') return NULL;
        p++;
      }
      if (!(p = skip_value(p, end, depth + 1))) return NULL;
      p = ws(p, end);
      if (p >= end) return NULL;
      if (*p == close) return p + 1;
      if (*p != ',') return NULL;
      p++;
    }
  }
  const char *start = p;
  while (p < end && (strchr("-+.eE", *p) || (*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z'))) p++;
  return p > start ? p : NULL;
}

// The value of `key` in the object at obj (raw, as in the input); 0 when absent.
static int get(span obj, const char *key, span *out) {
  const char *p = ws(obj.p, obj.p + obj.n), *end = obj.p + obj.n;
  if (p >= end || *p != '{') return 0;
  p = ws(p + 1, end);
  size_t klen = strlen(key);
  while (p < end && *p == '"') {
    const char *kend = skip_string(p, end);
    if (!kend) return 0;
    int match = (size_t)(kend - p - 2) == klen && memcmp(p + 1, key, klen) == 0;
    p = ws(kend, end);
    if (p >= end || *p != ':') return 0;
    const char *v = ws(p + 1, end);
    const char *vend = skip_value(v, end, 1);
    if (!vend) return 0;
    if (match) {
      out->p = v;
      out->n = (size_t)(vend - v);
      return 1;
    }
    p = ws(vend, end);
    if (p < end && *p == ',') p = ws(p + 1, end);
  }
  return 0;
}

// A JSON string without escapes into buf (NUL-terminated); 0 if not one or too long.
static int plain_string(span v, char *buf, size_t size) {
  if (v.n < 2 || v.p[0] != '"' || v.p[v.n - 1] != '"' || v.n - 2 >= size) return 0;
  if (memchr(v.p + 1, '\\', v.n - 2)) return 0;
  memcpy(buf, v.p + 1, v.n - 2);
  buf[v.n - 2] = '\0';
  return 1;
}

static int string_is(span v, const char *s) {
  size_t n = strlen(s);
  return v.n == n + 2 && v.p[0] == '"' && memcmp(v.p + 1, s, n) == 0;
}

// ---- the environment -------------------------------------------------------------

// K8S_POD_NAMESPACE=..;K8S_POD_NAME=.. out of CNI_ARGS ("FOO=BAR;ABC=123")
static int cni_arg(const char *args, const char *key, char *buf, size_t size) {
  size_t klen = strlen(key);
  for (const char *p = args; p && *p;) {
    const char *semi = strchr(p, ';');
    size_t len = semi ? (size_t)(semi - p) : strlen(p);
    if (len > klen && memcmp(p, key, klen) == 0 && p[klen] == '=') {
      size_t vlen = len - klen - 1;
      if (vlen >= size) return 0;
      memcpy(buf, p + klen + 1, vlen);
      buf[vlen] = '\0';
      return 1;
    }
    p = semi ? semi + 1 : NULL;
  }
  return 0;
}

static int read_stdin(char *buf, size_t max, size_t *len) {
  size_t n = 0;
  for (;;) {
    if (n == max) return -1;
    ssize_t r = read(0, buf + n, max - n);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -2;
    if (r == 0) break;
    n += (size_t)r;
  }
  *len = n;
  return 0;
}

// ---- the agent -------------------------------------------------------------------

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int wait_fd(int fd, short events, long long deadline) {
  for (;;) {
    long long left = deadline - now_ms();
    if (left <= 0) return -ETIMEDOUT;
    struct pollfd pfd = {.fd = fd, .events = events};
    int r = poll(&pfd, 1, (int)left);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -errno;
    if (r > 0) return 0;
  }
}

// Sends one request line, reads one reply line into reply. 0, or a negative errno.
static int ask_agent(const char *sock_path, const char *request, size_t reqlen, char *reply, size_t size, int timeout_s) {
  long long deadline = now_ms() + (long long)timeout_s * 1000;
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(sock_path) >= sizeof addr.sun_path) return -ENAMETOOLONG;
  strcpy(addr.sun_path, sock_path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -errno;
  int err = 0;
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
    if (errno != EINPROGRESS && errno != EAGAIN) {
      err = -errno;
      goto out;
    }
    if ((err = wait_fd(fd, POLLOUT, deadline))) goto out;
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
    if (soerr) {
      err = -soerr;
      goto out;
    }
  }
  for (size_t off = 0; off < reqlen;) {
    ssize_t w = send(fd, request + off, reqlen - off, MSG_NOSIGNAL);
    if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
      if ((err = wait_fd(fd, POLLOUT, deadline))) goto out;
      continue;
    }
    if (w < 0) {
      err = -errno;
      goto out;
    }
    off += (size_t)w;
  }
  size_t n = 0;
  for (;;) {
    if (n + 1 >= size) {
      err = -EMSGSIZE;
      goto out;
    }
    ssize_t r = recv(fd, reply + n, size - 1 - n, 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
      if ((err = wait_fd(fd, POLLIN, deadline))) goto out;
      continue;
    }
    if (r < 0) {
      err = -errno;
      goto out;
    }
    if (r == 0) {
      err = n ? 0 : -ECONNRESET; // closed without a word: the agent went away mid-request
      break;
    }
    n += (size_t)r;
    if (memchr(reply, '\n', n)) break;
  }
  reply[n] = '\0';
out:
  close(fd);
  return err;
}

static size_t build_request(char *buf, size_t size, const char *command, const char *cid, const char *netns, const char *ns, const char *pod) {
  FILE *f = fmemopen(buf, size, "w");
  if (!f) return 0;
  fprintf(f, "{\"command\":\"%s\",\"containerId\":", command);
  put_json_string(f, cid, strlen(cid));
  fputs(",\"netns\":", f);
  put_json_string(f, netns, strlen(netns));
  fputs(",\"namespace\":", f);
  put_json_string(f, ns, strlen(ns));
  fputs(",\"pod\":", f);
  put_json_string(f, pod, strlen(pod));
  fputs("}\n", f);
  long len = ftell(f);
  int bad = ferror(f) || fclose(f) != 0;
  return bad || len <= 0 || (size_t)len >= size ? 0 : (size_t)len;
}

// ---- the commands ------------------------------------------------------------------

static int version_supported(const char *v) {
  for (size_t i = 0; i < NSUPPORTED; i++)
    if (strcmp(v, SUPPORTED[i]) == 0) return 1;
  return 0;
}

static int print_version_result(void) {
  printf("{\"cniVersion\":\"1.1.0\",\"supportedVersions\":[");
  for (size_t i = 0; i < NSUPPORTED; i++) printf("%s\"%s\"", i ? "," : "", SUPPORTED[i]);
  printf("]}\n");
  return 0;
}

static int excluded(span conf, const char *ns) {
  span list;
  if (!get(conf, "excludeNamespaces", &list)) return strcmp(ns, "kube-system") == 0 || strcmp(ns, "nodemesh-system") == 0;
  const char *p = ws(list.p, list.p + list.n), *end = list.p + list.n;
  if (p >= end || *p != '[') return 0;
  for (p = ws(p + 1, end); p < end && *p == '"';) {
    const char *e = skip_string(p, end);
    if (!e) return 0;
    span item = {p, (size_t)(e - p)};
    if (string_is(item, ns)) return 1;
    p = ws(e, end);
    if (p < end && *p == ',') p = ws(p + 1, end);
  }
  return 0;
}

int main(void) {
  const char *command = getenv("CNI_COMMAND");
  if (!command || !*command) return fail(ERR_ENV, "CNI_COMMAND is not set", NULL);

  static char config[MAX_CONFIG];
  size_t len = 0;
  int r = read_stdin(config, sizeof config, &len);
  if (r == -1) return fail(ERR_DECODE, "network configuration on stdin is too large", "more than %d bytes", MAX_CONFIG);
  if (r < 0) return fail(ERR_IO, "cannot read the network configuration from stdin", "%s", strerror(errno));

  // VERSION reads only the cniVersion it is given, and may get no config at all
  if (strcmp(command, "VERSION") == 0) return print_version_result();

  span conf = {config, len};
  const char *after = skip_value(config, config + len, 0);
  if (!after || ws(after, config + len) != config + len || *ws(config, config + len) != '{')
    return fail(ERR_DECODE, "the network configuration on stdin is not a JSON object", NULL);
  span v;
  char cfgversion[32];
  if (!get(conf, "cniVersion", &v) || !plain_string(v, cfgversion, sizeof cfgversion))
    return fail(ERR_CONFIG, "the network configuration has no cniVersion", NULL);
  snprintf(version, sizeof version, "%s", cfgversion);
  if (!version_supported(cfgversion))
    return fail(ERR_VERSION, "incompatible CNI version", "nodemesh-cni supports 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0; the config says %s", cfgversion);

  char sock[108] = DEFAULT_SOCKET;
  if (get(conf, "agentSocket", &v) && !plain_string(v, sock, sizeof sock))
    return fail(ERR_CONFIG, "agentSocket must be a path of at most 107 bytes", NULL);
  int timeout_s = DEFAULT_TIMEOUT_S;
  if (get(conf, "timeoutSeconds", &v)) {
    char num[16];
    if (v.n >= sizeof num) return fail(ERR_CONFIG, "timeoutSeconds must be a number from 1 to 120", NULL);
    memcpy(num, v.p, v.n);
    num[v.n] = '\0';
    char *endp;
    long t = strtol(num, &endp, 10);
    if (*endp || t < 1 || t > 120) return fail(ERR_CONFIG, "timeoutSeconds must be a number from 1 to 120", "got %s", num);
    timeout_s = (int)t;
  }

  // GC (1.1.0): the agent releases namespaces that are gone on its own (its netns scan)
  if (strcmp(command, "GC") == 0) return 0;

  int add = strcmp(command, "ADD") == 0, del = strcmp(command, "DEL") == 0, check = strcmp(command, "CHECK") == 0;
  int status = strcmp(command, "STATUS") == 0;
  if (!add && !del && !check && !status) return fail(ERR_ENV, "unknown CNI_COMMAND", "%s", command);

  const char *cid = getenv("CNI_CONTAINERID");
  const char *netns = getenv("CNI_NETNS");
  const char *args = getenv("CNI_ARGS");
  char ns[256] = "", pod[256] = "";
  if (!status) {
    if (!cid || !*cid) return fail(ERR_ENV, "CNI_CONTAINERID is not set", NULL);
    // "the runtime ... may omit CNI_NETNS" on DEL when the namespace is already gone
    if (!del && (!netns || !*netns)) return fail(ERR_ENV, "CNI_NETNS is not set", NULL);
    cni_arg(args, "K8S_POD_NAMESPACE", ns, sizeof ns);
    cni_arg(args, "K8S_POD_NAME", pod, sizeof pod);
  }
  span prev = {NULL, 0};
  int has_prev = get(conf, "prevResult", &prev);
  if (add && !has_prev) return fail(ERR_CONFIG, "nodemesh-cni is a chained plugin: the configuration has no prevResult", "list it after the pod network's plugin in the conflist");

  // not a Kubernetes pod, or one whose namespace is left alone: nothing to ask
  int untouched = !status && (!*ns || !*pod || excluded(conf, ns));
  if (untouched) {
    if (add) printf("%.*s\n", (int)prev.n, prev.p);
    return 0;
  }

  char request[MAX_REQUEST], reply[MAX_REPLY];
  size_t reqlen = build_request(request, sizeof request, command, cid ? cid : "", netns ? netns : "", ns, pod);
  if (!reqlen) return fail(ERR_ENV, "the pod's identifiers are too long", NULL);
  r = ask_agent(sock, request, reqlen, reply, sizeof reply, timeout_s);
  if (r < 0) {
    // DEL "should not return an error" for what is already gone: the agent's scan
    // releases the namespace once it disappears
    if (del) return 0;
    if (status) return fail(ERR_UNAVAILABLE, "the nodemesh agent is not available", "%s: %s", sock, strerror(-r));
    return fail(ERR_TRY_AGAIN, "the nodemesh agent is unreachable, so the pod cannot be meshed (fail closed)",
                "pod %s/%s, agent socket %s: %s; is the nodemesh agent running on this node?", ns, pod, sock, strerror(-r));
  }
  span answer = {reply, strlen(reply)}, st, msg = {"\"\"", 2};
  get(answer, "message", &msg);
  if (!get(answer, "status", &st)) {
    if (del) return 0;
    return fail(ERR_DECODE, "the nodemesh agent's answer is not understood", "%.200s", reply);
  }
  if (string_is(st, "refused")) {
    if (del) return 0;
    char text[512] = "";
    if (!plain_string(msg, text, sizeof text)) snprintf(text, sizeof text, "%.*s", (int)(msg.n < 500 ? msg.n : 500), msg.p);
    return fail(ERR_REFUSED, "the nodemesh agent refused to enroll the pod (fail closed)", "pod %s/%s: %s", ns, pod, text);
  }
  if (add) {
    if (!string_is(st, "enrolled") && !string_is(st, "not-meshed"))
      return fail(ERR_DECODE, "the nodemesh agent's answer is not understood", "%.200s", reply);
    printf("%.*s\n", (int)prev.n, prev.p); // "pass through the prevResult"
  }
  return 0;
}
