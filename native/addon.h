// SPDX-License-Identifier: Apache-2.0
// Thin node-addon-api layer over libbpf: handles, errors, map and link calls. No policy
// here; agent/datapath/ decides what to load, pin, attach and enrol.
#pragma once

#include <napi.h>

#include <cstdint>
#include <string>
#include <unordered_map>

struct bpf_object;
struct bpf_link;

namespace nm {

// JS-visible integer handles for libbpf objects and links (explicit close, no GC
// finalizers: a link that vanished on GC would silently detach the datapath).
template <typename T>
class Registry {
 public:
  uint32_t Add(T* p) {
    uint32_t h = next_++;
    items_[h] = p;
    return h;
  }
  T* Get(uint32_t h) const {
    auto it = items_.find(h);
    return it == items_.end() ? nullptr : it->second;
  }
  T* Take(uint32_t h) {
    auto it = items_.find(h);
    if (it == items_.end()) return nullptr;
    T* p = it->second;
    items_.erase(it);
    return p;
  }

 private:
  uint32_t next_ = 1;
  std::unordered_map<uint32_t, T*> items_;
};

Registry<bpf_object>& Objects();
Registry<bpf_link>& Links();

// Errors: a JS Error with .errno (positive), .code ('EPERM'...) and a message that says
// what failed and what to do. libbpf's log of the current call (verifier output
// included) is appended when there is one.
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const std::string& what, const std::string& hint = "");
std::string DefaultHint(int err);
void InstallLibbpfLog();   // route libbpf's print callback into the capture buffer
void ResetLibbpfLog();     // called at the start of each addon call that uses libbpf

// argument helpers (throw TypeError)
uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* name);
int ArgFd(const Napi::CallbackInfo& info, size_t i);
std::string ArgString(const Napi::CallbackInfo& info, size_t i, const char* name);
Napi::Buffer<uint8_t> ArgBuffer(const Napi::CallbackInfo& info, size_t i, const char* name);
bpf_object* ArgObject(const Napi::CallbackInfo& info, size_t i);
bpf_link* ArgLink(const Napi::CallbackInfo& info, size_t i);

void InitObjects(Napi::Env env, Napi::Object exports);
void InitLinks(Napi::Env env, Napi::Object exports);
void InitMaps(Napi::Env env, Napi::Object exports);
void InitNetns(Napi::Env env, Napi::Object exports);
void InitTc(Napi::Env env, Napi::Object exports);
void InitFdPassing(Napi::Env env, Napi::Object exports);

}  // namespace nm
