// SPDX-License-Identifier: Apache-2.0
// Module entry: registers the functions and exports the layout of bpf/nodemesh.h.
#include <cstddef>

#include "addon.h"
#include "nodemesh.h"

namespace nm {

namespace {

Napi::Object Struct(Napi::Env env, size_t size, std::initializer_list<std::pair<const char*, size_t>> fields) {
  Napi::Object s = Napi::Object::New(env);
  s.Set("size", Napi::Number::New(env, size));
  Napi::Object offsets = Napi::Object::New(env);
  for (auto& f : fields) offsets.Set(f.first, Napi::Number::New(env, f.second));
  s.Set("offsets", offsets);
  return s;
}

#define NM_FIELD(type, field) std::make_pair(#field, offsetof(struct type, field))

Napi::Object Layout(Napi::Env env) {
  Napi::Object l = Napi::Object::New(env);
  l.Set("nm_config", Struct(env, sizeof(struct nm_config),
                            {NM_FIELD(nm_config, proxy_ip4), NM_FIELD(nm_config, proxy_port),
                             NM_FIELD(nm_config, mark), NM_FIELD(nm_config, flags)}));
  l.Set("nm_orig_dst", Struct(env, sizeof(struct nm_orig_dst),
                              {NM_FIELD(nm_orig_dst, ip4), NM_FIELD(nm_orig_dst, port),
                               NM_FIELD(nm_orig_dst, flags)}));
  l.Set("nm_tuple4", Struct(env, sizeof(struct nm_tuple4),
                            {NM_FIELD(nm_tuple4, client_ip4), NM_FIELD(nm_tuple4, proxy_ip4),
                             NM_FIELD(nm_tuple4, client_port), NM_FIELD(nm_tuple4, proxy_port)}));
  l.Set("netnsKeySize", Napi::Number::New(env, sizeof(__u64)));
  l.Set("netnsValueSize", Napi::Number::New(env, sizeof(__u32)));
  l.Set("cookieKeySize", Napi::Number::New(env, sizeof(__u64)));
  l.Set("defaultProxyPort", Napi::Number::New(env, NM_DEFAULT_PROXY_PORT));
  l.Set("netnsFlagEnrolled", Napi::Number::New(env, NM_NETNS_F_ENROLLED));
  l.Set("netnsFlagFailOpen", Napi::Number::New(env, NM_NETNS_F_FAIL_OPEN));
  l.Set("nm_liveness", Struct(env, sizeof(struct nm_liveness),
                              {NM_FIELD(nm_liveness, heartbeat_ns), NM_FIELD(nm_liveness, timeout_ns)}));
  l.Set("origFlagV4Mapped", Napi::Number::New(env, NM_ORIG_F_V4MAPPED));
  Napi::Object maps = Napi::Object::New(env);
  maps.Set("config", NM_MAP_CONFIG);
  maps.Set("meshNetns", NM_MAP_MESH_NETNS);
  maps.Set("origByCookie", NM_MAP_ORIG_BY_COOKIE);
  maps.Set("origByTuple", NM_MAP_ORIG_BY_TUPLE);
  maps.Set("liveness", NM_MAP_LIVENESS);
  l.Set("maps", maps);
  // inbound capture (bpf/inbound.bpf.c)
  l.Set("nm_inbound_config", Struct(env, sizeof(struct nm_inbound_config),
                                    {NM_FIELD(nm_inbound_config, mark), NM_FIELD(nm_inbound_config, mask),
                                     NM_FIELD(nm_inbound_config, flags)}));
  l.Set("nm_inbound_port", Struct(env, sizeof(struct nm_inbound_port),
                                  {NM_FIELD(nm_inbound_port, bridge_ifindex), NM_FIELD(nm_inbound_port, flags)}));
  l.Set("inboundFlagCapture", Napi::Number::New(env, NM_INBOUND_F_CAPTURE));
  l.Set("inboundFlagFailOpen", Napi::Number::New(env, NM_INBOUND_F_FAIL_OPEN));
  l.Set("defaultInboundPort", Napi::Number::New(env, NM_DEFAULT_INBOUND_PORT));
  Napi::Object inboundMaps = Napi::Object::New(env);
  inboundMaps.Set("config", NM_MAP_INBOUND_CONFIG);
  inboundMaps.Set("pods", NM_MAP_INBOUND_PODS);
  inboundMaps.Set("listener", NM_MAP_INBOUND_LISTENER);
  inboundMaps.Set("ports", NM_MAP_INBOUND_PORTS);
  l.Set("inboundMaps", inboundMaps);
  return l;
}

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  InstallLibbpfLog();
  InitObjects(env, exports);
  InitLinks(env, exports);
  InitMaps(env, exports);
  InitNetns(env, exports);
  InitTc(env, exports);
  InitFdPassing(env, exports);
  exports.Set("layout", Layout(env));
  return exports;
}

}  // namespace nm

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return nm::Init(env, exports); }
NODE_API_MODULE(nodemesh_native, InitModule)
