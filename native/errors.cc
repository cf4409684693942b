// SPDX-License-Identifier: Apache-2.0
// Exceptions with errno/code and an operator hint; libbpf's log captured per call.
#include <bpf/libbpf.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "addon.h"

namespace nm {

namespace {

std::string g_log;  // libbpf output of the current call (JS thread only)
constexpr size_t kLogKeep = 12 * 1024;  // the verifier's verdict is at the end

int OnLibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG && !getenv("NODEMESH_LIBBPF_DEBUG")) return 0;
  char buf[4096];
  va_list copy;
  va_copy(copy, args);
  int n = vsnprintf(buf, sizeof(buf), fmt, copy);
  va_end(copy);
  if (n > 0) g_log.append(buf, std::min<size_t>(n, sizeof(buf) - 1));
  if (g_log.size() > 4 * kLogKeep) g_log.erase(0, g_log.size() - kLogKeep);
  if (getenv("NODEMESH_LIBBPF_DEBUG")) vfprintf(stderr, fmt, args);
  return 0;
}

const char* ErrnoName(int err) {
  switch (err) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case E2BIG: return "E2BIG";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case ENOSPC: return "ENOSPC";
    case ENOSYS: return "ENOSYS";
    case ENOTSUP: return "EOPNOTSUPP";  // same value on Linux
    case ENOPROTOOPT: return "ENOPROTOOPT";
    case ENOTEMPTY: return "ENOTEMPTY";
    case ENOEXEC: return "ENOEXEC";
    case ESTALE: return "ESTALE";
    case ENOTSOCK: return "ENOTSOCK";
    case ETIMEDOUT: return "ETIMEDOUT";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EMSGSIZE: return "EMSGSIZE";
    case ECONNREFUSED: return "ECONNREFUSED";
    default: return "EUNKNOWN";
  }
}

}  // namespace

void InstallLibbpfLog() { libbpf_set_print(OnLibbpfPrint); }
void ResetLibbpfLog() { g_log.clear(); }

std::string DefaultHint(int err) {
  switch (err) {
    case EPERM:
      return "needs root or CAP_BPF+CAP_NET_ADMIN (and CAP_SYS_ADMIN on kernels before 5.8)";
    case ENOSYS:
      return "this kernel lacks the bpf() feature used; nodemesh needs Linux >= 5.15 with BTF";
    case E2BIG:
    case ENOSPC:
      return "a map is full or a limit was hit";
    default:
      return "";
  }
}

void ThrowErrno(Napi::Env env, int err, const std::string& what, const std::string& hint) {
  if (err < 0) err = -err;
  std::string msg = what + ": " + strerror(err) + " (" + ErrnoName(err) + ")";
  std::string h = hint.empty() ? DefaultHint(err) : hint;
  if (!h.empty()) msg += "; " + h;
  if (!g_log.empty()) {
    std::string tail = g_log.size() > kLogKeep ? "..." + g_log.substr(g_log.size() - kLogKeep) : g_log;
    msg += "\nlibbpf log:\n" + tail;
    g_log.clear();
  }
  Napi::Error e = Napi::Error::New(env, msg);
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("code", Napi::String::New(env, ErrnoName(err)));
  throw e;
}

uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsNumber())
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a number");
  return info[i].As<Napi::Number>().Uint32Value();
}

int ArgFd(const Napi::CallbackInfo& info, size_t i) {
  if (info.Length() <= i || !info[i].IsNumber())
    throw Napi::TypeError::New(info.Env(), "fd must be a number");
  return info[i].As<Napi::Number>().Int32Value();
}

std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsString())
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a string");
  return info[i].As<Napi::String>().Utf8Value();
}

Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i, const char* name) {
  if (info.Length() <= i || !info[i].IsBuffer())
    throw Napi::TypeError::New(info.Env(), std::string(name) + " must be a Buffer");
  return info[i].As<Napi::Buffer<uint8_t>>();
}

bpf_object* ArgObject(const Napi::CallbackInfo& info, size_t i) {
  bpf_object* obj = Objects().Get(ArgU32(info, i, "object handle"));
  if (!obj) throw Napi::Error::New(info.Env(), "unknown or closed bpf object handle");
  return obj;
}

bpf_link* ArgLink(const Napi::CallbackInfo& info, size_t i) {
  bpf_link* link = Links().Get(ArgU32(info, i, "link handle"));
  if (!link) throw Napi::Error::New(info.Env(), "unknown or destroyed bpf link handle");
  return link;
}

}  // namespace nm
