// SPDX-License-Identifier: Apache-2.0
// File descriptors over a Unix socket (SCM_RIGHTS), for handing the proxy's listening
// sockets from an old agent to its successor: a listener passed this way is the same
// kernel socket in both processes, so no connection waiting in its queue is lost and the
// inbound SOCKMAP entry stays. Node's net module cannot send descriptors between
// unrelated processes; these are the thin syscalls. The protocol: agent/lifecycle/.
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "addon.h"

namespace nm {

namespace {

constexpr size_t kMaxFds = 16;

// unixConnect(path) -> fd: a blocking, close-on-exec SOCK_STREAM connection
Napi::Value UnixConnect(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) ThrowErrno(info.Env(), ENAMETOOLONG, "unix socket path " + path);
  memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) ThrowErrno(info.Env(), errno, "socket(AF_UNIX)");
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr))) {
    int err = errno;
    close(fd);
    ThrowErrno(info.Env(), err, "connect to " + path, err == ECONNREFUSED || err == ENOENT ? "nobody listens there" : "");
  }
  return Napi::Number::New(info.Env(), fd);
}

// sendFds(sock, data, fds[]): one sendmsg carrying `data` and the descriptors
Napi::Value SendFds(const Napi::CallbackInfo& info) {
  int sock = ArgFd(info, 0);
  auto data = ArgBuffer(info, 1, "data");
  if (info.Length() < 3 || !info[2].IsArray()) throw Napi::TypeError::New(info.Env(), "fds must be an array of numbers");
  Napi::Array arr = info[2].As<Napi::Array>();
  if (arr.Length() > kMaxFds) throw Napi::RangeError::New(info.Env(), "at most 16 descriptors");
  if (data.Length() == 0) throw Napi::RangeError::New(info.Env(), "data must not be empty (it carries the descriptors)");
  std::vector<int> fds;
  for (uint32_t i = 0; i < arr.Length(); i++) fds.push_back(arr.Get(i).As<Napi::Number>().Int32Value());
  iovec iov = {data.Data(), data.Length()};
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxFds), 0);
  if (!fds.empty()) {
    msg.msg_control = control.data();
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  // the socket may be libuv's (non-blocking): a short message to a local peer goes at once
  // or not at all, so wait for room a little rather than fail on EAGAIN
  for (int tries = 0;; tries++) {
    ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(data.Length())) break;
    int err = n < 0 ? errno : EMSGSIZE;
    if ((err == EAGAIN || err == EINTR) && tries < 100) {
      pollfd p = {sock, POLLOUT, 0};
      poll(&p, 1, 10);
      continue;
    }
    ThrowErrno(info.Env(), err, "sendmsg(SCM_RIGHTS)");
  }
  return info.Env().Undefined();
}

// recvFds(sock, maxBytes, timeoutMs) -> { data: Buffer, fds: number[] } | null (peer closed)
// Waits up to timeoutMs for one message; the descriptors arrive close-on-exec.
Napi::Value RecvFds(const Napi::CallbackInfo& info) {
  int sock = ArgFd(info, 0);
  uint32_t max = ArgU32(info, 1, "maxBytes");
  uint32_t timeout = ArgU32(info, 2, "timeoutMs");
  pollfd p = {sock, POLLIN, 0};
  int r;
  do r = poll(&p, 1, static_cast<int>(timeout));
  while (r < 0 && errno == EINTR);
  if (r < 0) ThrowErrno(info.Env(), errno, "poll");
  if (r == 0) ThrowErrno(info.Env(), ETIMEDOUT, "no answer within " + std::to_string(timeout) + " ms");
  std::vector<char> buf(max > 0 ? max : 1);
  std::vector<char> control(CMSG_SPACE(sizeof(int) * kMaxFds), 0);
  iovec iov = {buf.data(), buf.size()};
  msghdr msg = {};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control.data();
  msg.msg_controllen = control.size();
  ssize_t n;
  do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) ThrowErrno(info.Env(), errno, "recvmsg");
  Napi::Array fds = Napi::Array::New(info.Env());
  uint32_t count = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds.Set(count++, Napi::Number::New(info.Env(), fd));
    }
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    for (uint32_t i = 0; i < count; i++) close(fds.Get(i).As<Napi::Number>().Int32Value());
    ThrowErrno(info.Env(), EMSGSIZE, "recvmsg: more descriptors than expected (control data truncated)");
  }
  if (n == 0 && count == 0) return info.Env().Null();
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("data", Napi::Buffer<char>::Copy(info.Env(), buf.data(), static_cast<size_t>(n)));
  out.Set("fds", fds);
  return out;
}

}  // namespace

void InitFdPassing(Napi::Env env, Napi::Object exports) {
  exports.Set("unixConnect", Napi::Function::New(env, UnixConnect));
  exports.Set("sendFds", Napi::Function::New(env, SendFds));
  exports.Set("recvFds", Napi::Function::New(env, RecvFds));
}

}  // namespace nm
