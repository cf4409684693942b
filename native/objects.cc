// SPDX-License-Identifier: Apache-2.0
// bpf_object lifecycle: open -> (pin paths) -> load -> close.
#include <bpf/libbpf.h>

#include <cerrno>

#include "addon.h"

namespace nm {

Registry<bpf_object>& Objects() {
  static Registry<bpf_object> r;
  return r;
}

namespace {

bpf_map* FindMap(const Napi::CallbackInfo& info, bpf_object* obj, const std::string& name) {
  bpf_map* map = bpf_object__find_map_by_name(obj, name.c_str());
  if (!map) ThrowErrno(info.Env(), ENOENT, "map '" + name + "' not found in the bpf object", "rebuild build/bpf (bash scripts/build.sh)");
  return map;
}

// openObject(path) -> handle
Napi::Value OpenObject(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  ResetLibbpfLog();
  bpf_object* obj = bpf_object__open_file(path.c_str(), nullptr);
  if (!obj) {
    int err = errno;
    ThrowErrno(info.Env(), err, "open bpf object " + path,
               err == ENOENT ? "build it first: bash scripts/build.sh" : "");
  }
  return Napi::Number::New(info.Env(), Objects().Add(obj));
}

// setMapPinPath(handle, mapName, path): at load libbpf reuses a compatible map pinned
// there, or creates the map and pins it there.
Napi::Value SetMapPinPath(const Napi::CallbackInfo& info) {
  bpf_object* obj = ArgObject(info, 0);
  std::string name = ArgString(info, 1, "mapName");
  std::string path = ArgString(info, 2, "path");
  ResetLibbpfLog();
  int err = bpf_map__set_pin_path(FindMap(info, obj, name), path.c_str());
  if (err) ThrowErrno(info.Env(), err, "set pin path of map " + name);
  return info.Env().Undefined();
}

// load(handle): creates/reuses maps, verifies and loads every program.
Napi::Value Load(const Napi::CallbackInfo& info) {
  bpf_object* obj = ArgObject(info, 0);
  ResetLibbpfLog();
  int err = bpf_object__load(obj);
  if (err) {
    std::string hint = DefaultHint(-err);
    if (err == -EINVAL)
      hint = "a pinned map may have a different definition: use a new versioned pin dir or remove the old pins";
    else if (err == -EACCES)
      hint = "the verifier rejected a program (log below), or permissions: needs root or CAP_BPF+CAP_NET_ADMIN";
    ThrowErrno(info.Env(), err, std::string("load bpf object ") + bpf_object__name(obj), hint);
  }
  return info.Env().Undefined();
}

Napi::Value CloseObject(const Napi::CallbackInfo& info) {
  uint32_t h = ArgU32(info, 0, "object handle");
  bpf_object__close(Objects().Take(h));  // NULL-safe
  return info.Env().Undefined();
}

// mapFd(handle, name) -> fd owned by the object (valid until closeObject)
Napi::Value MapFd(const Napi::CallbackInfo& info) {
  bpf_object* obj = ArgObject(info, 0);
  std::string name = ArgString(info, 1, "mapName");
  int fd = bpf_map__fd(FindMap(info, obj, name));
  if (fd < 0) ThrowErrno(info.Env(), -fd, "map " + name + " has no fd (object not loaded?)");
  return Napi::Number::New(info.Env(), fd);
}

// programNames(handle) -> string[]
Napi::Value ProgramNames(const Napi::CallbackInfo& info) {
  bpf_object* obj = ArgObject(info, 0);
  Napi::Array out = Napi::Array::New(info.Env());
  uint32_t i = 0;
  bpf_program* prog;
  bpf_object__for_each_program(prog, obj) out.Set(i++, bpf_program__name(prog));
  return out;
}

}  // namespace

void InitObjects(Napi::Env env, Napi::Object exports) {
  exports.Set("openObject", Napi::Function::New(env, OpenObject));
  exports.Set("setMapPinPath", Napi::Function::New(env, SetMapPinPath));
  exports.Set("load", Napi::Function::New(env, Load));
  exports.Set("closeObject", Napi::Function::New(env, CloseObject));
  exports.Set("mapFd", Napi::Function::New(env, MapFd));
  exports.Set("programNames", Napi::Function::New(env, ProgramNames));
}

}  // namespace nm
