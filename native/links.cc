// SPDX-License-Identifier: Apache-2.0
// cgroup attachment through bpf links: attach, pin, reopen from a pin, replace the
// program atomically, detach.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "addon.h"

namespace nm {

Registry<bpf_link>& Links() {
  static Registry<bpf_link> r;
  return r;
}

namespace {

bpf_program* FindProgram(const Napi::CallbackInfo& info, bpf_object* obj, const std::string& name) {
  bpf_program* prog = bpf_object__find_program_by_name(obj, name.c_str());
  if (!prog) ThrowErrno(info.Env(), ENOENT, "program '" + name + "' not found in the bpf object", "rebuild build/bpf (bash scripts/build.sh)");
  return prog;
}

// attachCgroup(handle, progName, cgroupDir) -> link handle
Napi::Value AttachCgroup(const Napi::CallbackInfo& info) {
  bpf_object* obj = ArgObject(info, 0);
  std::string name = ArgString(info, 1, "progName");
  std::string dir = ArgString(info, 2, "cgroupDir");
  bpf_program* prog = FindProgram(info, obj, name);
  ResetLibbpfLog();
  int cg = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (cg < 0) {
    int err = errno;
    ThrowErrno(info.Env(), err, "open cgroup " + dir,
               err == ENOENT ? "no such cgroup: is cgroup v2 mounted there (see /proc/mounts, type cgroup2) and the directory created?" : "");
  }
  bpf_link* link = bpf_program__attach_cgroup(prog, cg);
  int err = errno;
  close(cg);  // the link holds its own reference to the cgroup
  if (!link)
    ThrowErrno(info.Env(), err, "attach " + name + " to cgroup " + dir,
               err == EBADF || err == EINVAL ? "is " + dir + " a cgroup v2 directory? (cgroup v1 is not supported)" : "");
  return Napi::Number::New(info.Env(), Links().Add(link));
}

// linkPin(link, path): the link (and so the attachment) outlives this process
Napi::Value LinkPin(const Napi::CallbackInfo& info) {
  bpf_link* link = ArgLink(info, 0);
  std::string path = ArgString(info, 1, "path");
  ResetLibbpfLog();
  int err = bpf_link__pin(link, path.c_str());
  if (err)
    ThrowErrno(info.Env(), err, "pin link at " + path,
               err == -EPERM || err == -EINVAL ? "is bpffs mounted there? mount -t bpf bpf /sys/fs/bpf" : "");
  return info.Env().Undefined();
}

Napi::Value LinkUnpin(const Napi::CallbackInfo& info) {
  bpf_link* link = ArgLink(info, 0);
  ResetLibbpfLog();
  int err = bpf_link__unpin(link);
  if (err && err != -EINVAL) ThrowErrno(info.Env(), err, "unpin link");  // EINVAL: was not pinned
  return info.Env().Undefined();
}

// linkDetach(link): detach now, even if the link is still pinned or shared
Napi::Value LinkDetach(const Napi::CallbackInfo& info) {
  bpf_link* link = ArgLink(info, 0);
  if (bpf_link_detach(bpf_link__fd(link))) ThrowErrno(info.Env(), errno, "detach link");
  return info.Env().Undefined();
}

// linkDestroy(link): close our fd; a pinned link stays attached
Napi::Value LinkDestroy(const Napi::CallbackInfo& info) {
  bpf_link* link = Links().Take(ArgU32(info, 0, "link handle"));
  if (link) bpf_link__destroy(link);
  return info.Env().Undefined();
}

// linkOpen(pinPath) -> link handle, for a link pinned by an earlier agent
Napi::Value LinkOpen(const Napi::CallbackInfo& info) {
  std::string path = ArgString(info, 0, "pinPath");
  ResetLibbpfLog();
  bpf_link* link = bpf_link__open(path.c_str());
  if (!link) ThrowErrno(info.Env(), errno, "open pinned link " + path);
  return Napi::Number::New(info.Env(), Links().Add(link));
}

// linkUpdateProgram(link, handle, progName): atomic replace, no window without a program
Napi::Value LinkUpdateProgram(const Napi::CallbackInfo& info) {
  bpf_link* link = ArgLink(info, 0);
  bpf_object* obj = ArgObject(info, 1);
  std::string name = ArgString(info, 2, "progName");
  ResetLibbpfLog();
  int err = bpf_link__update_program(link, FindProgram(info, obj, name));
  if (err)
    ThrowErrno(info.Env(), err, "replace the program of a link with " + name,
               err == -EINVAL ? "program type or attach type differs from the link's" : "");
  return info.Env().Undefined();
}

// linkInfo(link) -> { id, progId, type, attachType, cgroupId: bigint }
Napi::Value LinkInfo(const Napi::CallbackInfo& info) {
  bpf_link* link = ArgLink(info, 0);
  bpf_link_info li = {};
  __u32 len = sizeof(li);
  if (bpf_obj_get_info_by_fd(bpf_link__fd(link), &li, &len)) ThrowErrno(info.Env(), errno, "get link info");
  Napi::Object out = Napi::Object::New(info.Env());
  out.Set("id", li.id);
  out.Set("progId", li.prog_id);
  out.Set("type", li.type);
  bool cgroup = li.type == BPF_LINK_TYPE_CGROUP;
  out.Set("attachType", cgroup ? li.cgroup.attach_type : 0);
  out.Set("cgroupId", Napi::BigInt::New(info.Env(), static_cast<uint64_t>(cgroup ? li.cgroup.cgroup_id : 0)));
  return out;
}

}  // namespace

void InitLinks(Napi::Env env, Napi::Object exports) {
  exports.Set("attachCgroup", Napi::Function::New(env, AttachCgroup));
  exports.Set("linkPin", Napi::Function::New(env, LinkPin));
  exports.Set("linkUnpin", Napi::Function::New(env, LinkUnpin));
  exports.Set("linkDetach", Napi::Function::New(env, LinkDetach));
  exports.Set("linkDestroy", Napi::Function::New(env, LinkDestroy));
  exports.Set("linkOpen", Napi::Function::New(env, LinkOpen));
  exports.Set("linkUpdateProgram", Napi::Function::New(env, LinkUpdateProgram));
  exports.Set("linkInfo", Napi::Function::New(env, LinkInfo));
}

}  // namespace nm
