// SPDX-License-Identifier: Apache-2.0
// tc (clsact) attachment of a loaded program, by ifindex in the caller's network
// namespace, over libbpf 1.1's netlink helpers (that libbpf has no tcx links): attach or
// atomically replace one filter, query, detach, and remove the clsact qdisc. Which
// interfaces, handles and priorities: agent/datapath/inbound.ts.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>

#include <cerrno>

#include "addon.h"

namespace nm {

namespace {

bpf_tc_attach_point ArgDirection(const Napi::CallbackInfo& info, size_t i) {
  std::string d = ArgString(info, i, "direction");
  if (d == "ingress") return BPF_TC_INGRESS;
  if (d == "egress") return BPF_TC_EGRESS;
  throw Napi::TypeError::New(info.Env(), "direction must be 'ingress' or 'egress'");
}

std::string Where(uint32_t ifindex, bpf_tc_attach_point dir) {
  return std::string(dir == BPF_TC_INGRESS ? "ingress" : "egress") + " of ifindex " + std::to_string(ifindex);
}

// libbpf's opts structs, zeroed and sized (its LIBBPF_OPTS macro is C, not C++)
bpf_tc_hook Hook(uint32_t ifindex, bpf_tc_attach_point dir) {
  bpf_tc_hook h = {};
  h.sz = sizeof(h);
  h.ifindex = static_cast<int>(ifindex);
  h.attach_point = dir;
  return h;
}

bpf_tc_opts Opts(uint32_t handle, uint32_t priority, int progFd = 0, uint32_t flags = 0) {
  bpf_tc_opts o = {};
  o.sz = sizeof(o);
  o.prog_fd = progFd;
  o.flags = flags;
  o.handle = handle;
  o.priority = priority;
  return o;
}

std::string Hint(int err) {
  if (err == ENODEV || err == ENXIO) return "the interface is gone (a pod was deleted?)";
  if (err == EPERM) return "needs root or CAP_NET_ADMIN+CAP_BPF";
  return "";
}

// tcAttach(obj, progName, ifindex, direction, handle, priority) -> progId
// Creates the clsact qdisc when the interface has none, then adds the filter or replaces
// the program of ours (same handle and priority) in place.
Napi::Value TcAttach(const Napi::CallbackInfo& info) {
  bpf_object* obj = ArgObject(info, 0);
  std::string name = ArgString(info, 1, "progName");
  uint32_t ifindex = ArgU32(info, 2, "ifindex");
  bpf_tc_attach_point dir = ArgDirection(info, 3);
  uint32_t handle = ArgU32(info, 4, "handle");
  uint32_t priority = ArgU32(info, 5, "priority");
  bpf_program* prog = bpf_object__find_program_by_name(obj, name.c_str());
  if (!prog) ThrowErrno(info.Env(), ENOENT, "program '" + name + "' not found in the bpf object", "rebuild build/bpf (bash scripts/build.sh)");
  if (priority == 0 || priority > 0xffff) throw Napi::RangeError::New(info.Env(), "priority must be 1-65535");
  ResetLibbpfLog();
  bpf_tc_hook hook = Hook(ifindex, dir);
  int err = bpf_tc_hook_create(&hook);  // the clsact qdisc, both directions
  if (err && err != -EEXIST) ThrowErrno(info.Env(), err, "create the clsact qdisc on " + Where(ifindex, dir), Hint(-err));
  bpf_tc_opts opts = Opts(handle, priority, bpf_program__fd(prog), BPF_TC_F_REPLACE);
  err = bpf_tc_attach(&hook, &opts);
  if (err) ThrowErrno(info.Env(), err, "attach " + name + " to " + Where(ifindex, dir), Hint(-err));
  return Napi::Number::New(info.Env(), opts.prog_id);
}

// tcQuery(ifindex, direction, handle, priority) -> { progId, progName } | null
Napi::Value TcQuery(const Napi::CallbackInfo& info) {
  uint32_t ifindex = ArgU32(info, 0, "ifindex");
  bpf_tc_attach_point dir = ArgDirection(info, 1);
  bpf_tc_hook hook = Hook(ifindex, dir);
  bpf_tc_opts opts = Opts(ArgU32(info, 2, "handle"), ArgU32(info, 3, "priority"));
  ResetLibbpfLog();
  int err = bpf_tc_query(&hook, &opts);
  // ENOENT: no such filter; EINVAL: no clsact qdisc; ENODEV: no such interface
  if (err == -ENOENT || err == -EINVAL || err == -ENODEV) return info.Env().Null();
  if (err) ThrowErrno(info.Env(), err, "query the tc filter on " + Where(ifindex, dir), Hint(-err));
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("progId", opts.prog_id);
  std::string progName;
  int fd = bpf_prog_get_fd_by_id(opts.prog_id);
  if (fd >= 0) {
    bpf_prog_info pi = {};
    __u32 len = sizeof(pi);
    if (bpf_obj_get_info_by_fd(fd, &pi, &len) == 0) progName = pi.name;
    close(fd);
  }
  out.Set("progName", progName);
  return out;
}

// tcDetach(ifindex, direction, handle, priority) -> true if a filter was removed
Napi::Value TcDetach(const Napi::CallbackInfo& info) {
  uint32_t ifindex = ArgU32(info, 0, "ifindex");
  bpf_tc_attach_point dir = ArgDirection(info, 1);
  bpf_tc_hook hook = Hook(ifindex, dir);
  bpf_tc_opts opts = Opts(ArgU32(info, 2, "handle"), ArgU32(info, 3, "priority"));
  ResetLibbpfLog();
  int err = bpf_tc_detach(&hook, &opts);
  if (err == -ENOENT || err == -EINVAL || err == -ENODEV) return Napi::Boolean::New(info.Env(), false);
  if (err) ThrowErrno(info.Env(), err, "detach the tc filter from " + Where(ifindex, dir), Hint(-err));
  return Napi::Boolean::New(info.Env(), true);
}

// tcHookDestroy(ifindex) -> true if a clsact qdisc was removed (with every filter on it:
// the caller checks that none but its own were there)
Napi::Value TcHookDestroy(const Napi::CallbackInfo& info) {
  uint32_t ifindex = ArgU32(info, 0, "ifindex");
  bpf_tc_hook hook = Hook(ifindex, static_cast<bpf_tc_attach_point>(BPF_TC_INGRESS | BPF_TC_EGRESS));
  ResetLibbpfLog();
  int err = bpf_tc_hook_destroy(&hook);
  if (err == -ENOENT || err == -EINVAL || err == -ENODEV) return Napi::Boolean::New(info.Env(), false);
  if (err) ThrowErrno(info.Env(), err, "remove the clsact qdisc of ifindex " + std::to_string(ifindex), Hint(-err));
  return Napi::Boolean::New(info.Env(), true);
}

}  // namespace

void InitTc(Napi::Env env, Napi::Object exports) {
  exports.Set("tcAttach", Napi::Function::New(env, TcAttach));
  exports.Set("tcQuery", Napi::Function::New(env, TcQuery));
  exports.Set("tcDetach", Napi::Function::New(env, TcDetach));
  exports.Set("tcHookDestroy", Napi::Function::New(env, TcHookDestroy));
}

}  // namespace nm
