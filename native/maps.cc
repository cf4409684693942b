// SPDX-License-Identifier: Apache-2.0
// Map element access by fd; keys and values are opaque Buffers encoded in TypeScript
// against bpf/nodemesh.h.
#include <bpf/bpf.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "addon.h"

namespace nm {

namespace {

// mapUpdate(fd, key, value, flags)
Napi::Value MapUpdate(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  auto key = ArgBuffer(info, 1, "key");
  auto value = ArgBuffer(info, 2, "value");
  uint32_t flags = info.Length() > 3 ? ArgU32(info, 3, "flags") : static_cast<uint32_t>(BPF_ANY);
  if (bpf_map_update_elem(fd, key.Data(), value.Data(), flags)) {
    int err = errno;
    ThrowErrno(info.Env(), err, "update map element",
               err == E2BIG ? "the map is full (max_entries reached)" : "");
  }
  return info.Env().Undefined();
}

// mapLookup(fd, key, valueSize) -> Buffer | null
Napi::Value MapLookup(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  auto key = ArgBuffer(info, 1, "key");
  uint32_t size = ArgU32(info, 2, "valueSize");
  auto value = Napi::Buffer<uint8_t>::New(info.Env(), size);
  if (bpf_map_lookup_elem(fd, key.Data(), value.Data())) {
    int err = errno;
    if (err == ENOENT) return info.Env().Null();
    ThrowErrno(info.Env(), err, "look up map element");
  }
  return value;
}

// mapDelete(fd, key) -> true if an element was deleted
Napi::Value MapDelete(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  auto key = ArgBuffer(info, 1, "key");
  if (bpf_map_delete_elem(fd, key.Data())) {
    int err = errno;
    if (err == ENOENT) return Napi::Boolean::New(info.Env(), false);
    ThrowErrno(info.Env(), err, "delete map element");
  }
  return Napi::Boolean::New(info.Env(), true);
}

// mapKeys(fd, keySize) -> Buffer[]; elements deleted meanwhile may restart the walk
// (kernel semantics of get_next_key on a hash map), good enough for listings.
Napi::Value MapKeys(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  uint32_t size = ArgU32(info, 1, "keySize");
  Napi::Array out = Napi::Array::New(info.Env());
  std::vector<uint8_t> cur(size), next(size);
  const void* prev = nullptr;
  uint32_t n = 0;
  while (bpf_map_get_next_key(fd, prev, next.data()) == 0) {
    out.Set(n++, Napi::Buffer<uint8_t>::Copy(info.Env(), next.data(), size));
    cur.swap(next);
    prev = cur.data();
  }
  if (errno != ENOENT) ThrowErrno(info.Env(), errno, "iterate map keys");
  return out;
}

// mapOpenPinned(path) -> fd (close with closeFd)
Napi::Value MapOpenPinned(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "path");
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) {
    int err = errno;
    ThrowErrno(info.Env(), err, "open pinned map " + path,
               err == ENOENT ? "no such pin: is the datapath loaded and bpffs mounted?" : "");
  }
  return Napi::Number::New(info.Env(), fd);
}

// mapInfo(fd) -> { id, type, keySize, valueSize, maxEntries, flags, name }
Napi::Value MapInfo(const Napi::CallbackInfo& info) {
  int fd = ArgFd(info, 0);
  bpf_map_info mi = {};
  __u32 len = sizeof(mi);
  if (bpf_obj_get_info_by_fd(fd, &mi, &len)) ThrowErrno(info.Env(), errno, "get map info");
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("id", mi.id);
  out.Set("type", mi.type);
  out.Set("keySize", mi.key_size);
  out.Set("valueSize", mi.value_size);
  out.Set("maxEntries", mi.max_entries);
  out.Set("flags", mi.map_flags);
  out.Set("name", std::string(mi.name));
  return out;
}

Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  if (close(ArgFd(info, 0))) ThrowErrno(info.Env(), errno, "close fd");
  return info.Env().Undefined();
}

}  // namespace

void InitMaps(Napi::Env env, Napi::Object exports) {
  exports.Set("mapUpdate", Napi::Function::New(env, MapUpdate));
  exports.Set("mapLookup", Napi::Function::New(env, MapLookup));
  exports.Set("mapDelete", Napi::Function::New(env, MapDelete));
  exports.Set("mapKeys", Napi::Function::New(env, MapKeys));
  exports.Set("mapOpenPinned", Napi::Function::New(env, MapOpenPinned));
  exports.Set("mapInfo", Napi::Function::New(env, MapInfo));
  exports.Set("closeFd", Napi::Function::New(env, CloseFd));
}

}  // namespace nm
