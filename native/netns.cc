// SPDX-License-Identifier: Apache-2.0
// netnsCookie(path): the cookie the kernel gives a network namespace, the key of
// nm_mesh_netns. setns() changes only the calling thread's netns, so a short-lived
// thread enters the namespace, reads SO_NETNS_COOKIE from a fresh socket and exits;
// the JS thread never leaves its own namespace.
#include <fcntl.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <thread>

#include "addon.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71
#endif

namespace nm {

namespace {

struct CookieResult {
  uint64_t cookie = 0;
  int err = 0;
  const char* step = "";
};

void ReadCookie(int nsfd, CookieResult* r) {
  if (setns(nsfd, CLONE_NEWNET)) {
    r->err = errno;
    r->step = "setns";
    return;
  }
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) {
    r->err = errno;
    r->step = "socket";
    return;
  }
  socklen_t len = sizeof(r->cookie);
  if (getsockopt(s, SOL_SOCKET, SO_NETNS_COOKIE, &r->cookie, &len)) {
    r->err = errno;
    r->step = "getsockopt(SO_NETNS_COOKIE)";
  }
  close(s);
}

Napi::Value NetnsCookie(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "netnsPath");
  int nsfd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (nsfd < 0) {
    int err = errno;
    ThrowErrno(info.Env(), err, "open network namespace " + path,
               err == ENOENT ? "no such namespace (ip netns list / /proc/<pid>/ns/net)" : "");
  }
  CookieResult r;
  std::thread t(ReadCookie, nsfd, &r);
  t.join();
  close(nsfd);
  if (r.err) {
    std::string hint;
    if (r.err == EPERM) hint = "entering a network namespace needs root or CAP_SYS_ADMIN";
    else if (r.err == EINVAL) hint = path + " is not a network namespace";
    else if (r.err == ENOPROTOOPT) hint = "SO_NETNS_COOKIE needs Linux >= 5.14";
    ThrowErrno(info.Env(), r.err, std::string(r.step) + " for " + path, hint);
  }
  return Napi::BigInt::New(info.Env(), r.cookie);
}

}  // namespace

void InitNetns(Napi::Env env, Napi::Object exports) {
  exports.Set("netnsCookie", Napi::Function::New(env, NetnsCookie));
}

}  // namespace nm
