#include "cri/oci_spec.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/files.h"
#include "base/unique_fd.h"

namespace kapal::cri {

namespace {

using runtime::v1::ContainerConfig;

constexpr char kDefaultPath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

std::vector<std::string> StringList(const nlohmann::json& value) {
  std::vector<std::string> list;
  if (!value.is_array()) return list;
  for (const nlohmann::json& item : value) {
    if (item.is_string()) list.push_back(item.get<std::string>());
  }
  return list;
}

// Reads FILE of the image's root without leaving it: symlinks and ".." resolve inside ROOTFS,
// as they would inside the container (a hostile image cannot make kapald read host files).
absl::StatusOr<std::string> ReadFileInRoot(const std::string& rootfs, const std::string& file) {
  base::UniqueFd root(::open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) return base::ErrnoStatus(errno, "open " + rootfs);
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  base::UniqueFd fd(
      static_cast<int>(::syscall(SYS_openat2, root.Get(), file.c_str(), &how, sizeof how)));
  if (!fd) return base::ErrnoStatus(errno, "open " + file + " in the image");
  std::string text;
  char buffer[8192];
  ssize_t n;
  while ((n = ::read(fd.Get(), buffer, sizeof buffer)) > 0) {
    text.append(buffer, static_cast<size_t>(n));
    if (text.size() > 16 * 1024 * 1024) break;  // a passwd file of that size is not one
  }
  return text;
}

// passwd/group entries: name:x:id:... , fields split by ':'.
struct Entry {
  std::string name;
  uint32_t id = 0;
  uint32_t gid = 0;                  // passwd only
  std::vector<std::string> members;  // group only
};

std::vector<Entry> ParseDatabase(const std::string& text, bool group) {
  std::vector<Entry> entries;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields = absl::StrSplit(line, ':');
    if (fields.size() < (group ? 3u : 4u)) continue;
    Entry entry;
    entry.name = fields[0];
    if (!absl::SimpleAtoi(fields[2], &entry.id)) continue;
    if (!group && !absl::SimpleAtoi(fields[3], &entry.gid)) continue;
    if (group && fields.size() > 3 && !fields[3].empty()) {
      entry.members = absl::StrSplit(fields[3], ',');
    }
    entries.push_back(entry);
  }
  return entries;
}

bool IsNumber(const std::string& text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), ::isdigit);
}

nlohmann::json BindMount(const std::string& destination, const std::string& source,
                         std::vector<std::string> options) {
  return {{"destination", destination}, {"type", "bind"}, {"source", source}, {"options", options}};
}

std::vector<std::string> ApplyCapabilityChanges(const runtime::v1::Capability& changes,
                                                bool privileged) {
  static const std::vector<std::string> kAll = {"CAP_CHOWN",
                                                "CAP_DAC_OVERRIDE",
                                                "CAP_DAC_READ_SEARCH",
                                                "CAP_FOWNER",
                                                "CAP_FSETID",
                                                "CAP_KILL",
                                                "CAP_SETGID",
                                                "CAP_SETUID",
                                                "CAP_SETPCAP",
                                                "CAP_LINUX_IMMUTABLE",
                                                "CAP_NET_BIND_SERVICE",
                                                "CAP_NET_BROADCAST",
                                                "CAP_NET_ADMIN",
                                                "CAP_NET_RAW",
                                                "CAP_IPC_LOCK",
                                                "CAP_IPC_OWNER",
                                                "CAP_SYS_MODULE",
                                                "CAP_SYS_RAWIO",
                                                "CAP_SYS_CHROOT",
                                                "CAP_SYS_PTRACE",
                                                "CAP_SYS_PACCT",
                                                "CAP_SYS_ADMIN",
                                                "CAP_SYS_BOOT",
                                                "CAP_SYS_NICE",
                                                "CAP_SYS_RESOURCE",
                                                "CAP_SYS_TIME",
                                                "CAP_SYS_TTY_CONFIG",
                                                "CAP_MKNOD",
                                                "CAP_LEASE",
                                                "CAP_AUDIT_WRITE",
                                                "CAP_AUDIT_CONTROL",
                                                "CAP_SETFCAP",
                                                "CAP_MAC_OVERRIDE",
                                                "CAP_MAC_ADMIN",
                                                "CAP_SYSLOG",
                                                "CAP_WAKE_ALARM",
                                                "CAP_BLOCK_SUSPEND",
                                                "CAP_AUDIT_READ",
                                                "CAP_PERFMON",
                                                "CAP_BPF",
                                                "CAP_CHECKPOINT_RESTORE"};
  if (privileged) return kAll;
  auto normalize = [](std::string name) {
    name = absl::AsciiStrToUpper(name);
    return name.rfind("CAP_", 0) == 0 || name == "ALL" ? name : "CAP_" + name;
  };
  std::vector<std::string> caps = DefaultCapabilities();
  for (const std::string& add : changes.add_capabilities()) {
    std::string name = normalize(add);
    if (name == "ALL") {
      caps = kAll;
      continue;
    }
    if (std::find(caps.begin(), caps.end(), name) == caps.end()) caps.push_back(name);
  }
  for (const std::string& drop : changes.drop_capabilities()) {
    std::string name = normalize(drop);
    if (name == "ALL") {
      caps.clear();
      continue;
    }
    caps.erase(std::remove(caps.begin(), caps.end(), name), caps.end());
  }
  return caps;
}

// RuntimeDefault: a deny-list of the system calls Docker's and containerd's default profiles
// refuse to containers without extra capabilities (module loading, kexec, clock setting,
// keyring, ptrace, mount and namespace calls unless CAP_SYS_ADMIN, ...). They answer EPERM.
nlohmann::json DefaultSeccompProfile(const std::vector<std::string>& caps) {
  auto has = [&](const char* cap) {
    return std::find(caps.begin(), caps.end(), cap) != caps.end();
  };
  std::vector<std::string> denied = {"acct",
                                     "add_key",
                                     "bpf",
                                     "create_module",
                                     "delete_module",
                                     "finit_module",
                                     "get_kernel_syms",
                                     "init_module",
                                     "iopl",
                                     "ioperm",
                                     "kcmp",
                                     "kexec_file_load",
                                     "kexec_load",
                                     "keyctl",
                                     "lookup_dcookie",
                                     "nfsservctl",
                                     "open_by_handle_at",
                                     "perf_event_open",
                                     "query_module",
                                     "quotactl",
                                     "request_key",
                                     "swapon",
                                     "swapoff",
                                     "sysfs",
                                     "_sysctl",
                                     "uselib",
                                     "userfaultfd",
                                     "ustat",
                                     "vm86",
                                     "vm86old"};
  if (!has("CAP_SYS_ADMIN")) {
    denied.insert(denied.end(), {"mount", "umount", "umount2", "unshare", "setns", "pivot_root",
                                 "fsopen", "fsmount", "fsconfig", "fspick", "move_mount",
                                 "open_tree", "name_to_handle_at", "clone3"});
  }
  if (!has("CAP_SYS_TIME")) {
    denied.insert(denied.end(), {"clock_adjtime", "clock_settime", "settimeofday", "stime"});
  }
  if (!has("CAP_SYS_PTRACE")) {
    denied.insert(denied.end(), {"ptrace", "process_vm_readv", "process_vm_writev"});
  }
  if (!has("CAP_SYS_BOOT")) denied.push_back("reboot");
  if (!has("CAP_SYS_NICE")) {
    denied.insert(denied.end(), {"get_mempolicy", "mbind", "set_mempolicy", "move_pages"});
  }
  nlohmann::json syscalls = nlohmann::json::array();
  // clone3 gets ENOSYS, not EPERM: glibc then falls back to clone, which the filter allows.
  std::vector<std::string> enosys;
  std::vector<std::string> eperm;
  for (const std::string& name : denied) (name == "clone3" ? enosys : eperm).push_back(name);
  syscalls.push_back({{"names", eperm}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", 1}});
  if (!enosys.empty()) {
    syscalls.push_back({{"names", enosys}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", 38}});
  }
  // The native architecture and the compat ones it can run; a filter per foreign architecture
  // would only cost time at every container start.
#if defined(__x86_64__)
  std::vector<std::string> architectures = {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"};
#elif defined(__aarch64__)
  std::vector<std::string> architectures = {"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"};
#else
  std::vector<std::string> architectures;  // libseccomp's native one
#endif
  return {{"defaultAction", "SCMP_ACT_ALLOW"},
          {"architectures", architectures},
          {"syscalls", syscalls}};
}

absl::StatusOr<nlohmann::json> SeccompFor(const runtime::v1::LinuxContainerSecurityContext& sc,
                                          const std::vector<std::string>& caps) {
  if (sc.privileged()) return nlohmann::json();
  using Profile = runtime::v1::SecurityProfile;
  if (sc.has_seccomp()) {
    switch (sc.seccomp().profile_type()) {
      case Profile::Unconfined:
        return nlohmann::json();
      case Profile::Localhost: {
        const std::string& path = sc.seccomp().localhost_ref();
        if (absl::Status checked = CheckClientPath(path, "seccomp profile"); !checked.ok()) {
          return checked;
        }
        absl::StatusOr<std::string> text = base::ReadFile(path);
        if (!text.ok()) return absl::InvalidArgumentError(text.status().message());
        nlohmann::json profile = nlohmann::json::parse(*text, nullptr, false);
        if (!profile.is_object()) {
          return absl::InvalidArgumentError(
              absl::StrCat("seccomp profile ", path, " is not a JSON object"));
        }
        return profile;
      }
      default:
        return DefaultSeccompProfile(caps);
    }
  }
  const std::string& legacy = sc.seccomp_profile_path();
  if (legacy == "unconfined") return nlohmann::json();
  // Kubernetes' default without a profile is Unconfined, but "runtime/default" and an empty
  // SecurityProfile mean RuntimeDefault; kapal, like containerd's default config, applies
  // RuntimeDefault unless Unconfined is asked for.
  return DefaultSeccompProfile(caps);
}

int64_t Clamp(int64_t value, int64_t low, int64_t high) {
  return std::max(low, std::min(value, high));
}

}  // namespace

const std::vector<std::string>& DefaultCapabilities() {
  static const std::vector<std::string> kDefault = {
      "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
      "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
      "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
      "CAP_KILL",    "CAP_AUDIT_WRITE"};
  return kDefault;
}

ImageRuntimeConfig ImageRuntimeConfig::Parse(const std::string& image_config_json) {
  ImageRuntimeConfig parsed;
  nlohmann::json document = nlohmann::json::parse(image_config_json, nullptr, false);
  if (!document.is_object() || !document.contains("config") || !document["config"].is_object()) {
    return parsed;
  }
  const nlohmann::json& config = document["config"];
  parsed.entrypoint = StringList(config.value("Entrypoint", nlohmann::json()));
  parsed.cmd = StringList(config.value("Cmd", nlohmann::json()));
  parsed.env = StringList(config.value("Env", nlohmann::json()));
  if (config.contains("WorkingDir") && config["WorkingDir"].is_string()) {
    parsed.working_dir = config["WorkingDir"].get<std::string>();
  }
  if (config.contains("User") && config["User"].is_string()) {
    parsed.user = config["User"].get<std::string>();
  }
  if (config.contains("StopSignal") && config["StopSignal"].is_string()) {
    parsed.stop_signal = config["StopSignal"].get<std::string>();
  }
  return parsed;
}

absl::StatusOr<std::vector<std::string>> ContainerArgs(const ContainerConfig& config,
                                                       const ImageRuntimeConfig& image) {
  std::vector<std::string> args;
  if (!config.command().empty()) {
    args.assign(config.command().begin(), config.command().end());
    args.insert(args.end(), config.args().begin(), config.args().end());
  } else {
    args = image.entrypoint;
    if (!config.args().empty()) {
      args.insert(args.end(), config.args().begin(), config.args().end());
    } else {
      args.insert(args.end(), image.cmd.begin(), image.cmd.end());
    }
  }
  if (args.empty()) {
    return absl::InvalidArgumentError(
        "no command: the container config has no command or args and the image has no "
        "Entrypoint or Cmd");
  }
  return args;
}

std::vector<std::string> ContainerEnv(const ContainerConfig& config,
                                      const ImageRuntimeConfig& image) {
  std::vector<std::string> env;
  std::map<std::string, size_t> position;
  auto set = [&](const std::string& key, const std::string& entry) {
    auto found = position.find(key);
    if (found != position.end()) {
      env[found->second] = entry;
    } else {
      position[key] = env.size();
      env.push_back(entry);
    }
  };
  for (const std::string& entry : image.env) set(entry.substr(0, entry.find('=')), entry);
  for (const runtime::v1::KeyValue& kv : config.envs()) {
    set(kv.key(), absl::StrCat(kv.key(), "=", kv.value()));
  }
  if (position.count("PATH") == 0) env.insert(env.begin(), kDefaultPath);
  return env;
}

absl::Status CheckClientPath(const std::string& path, const std::string& what) {
  if (path.empty() || path[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " \"", path, "\" must be an absolute path"));
  }
  for (absl::string_view part : absl::StrSplit(path, '/')) {
    if (part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " \"", path, "\" must not contain \"..\""));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<ProcessUser> ResolveUser(const std::string& rootfs, const ContainerConfig& config,
                                        const std::string& image_user) {
  const auto& sc = config.linux().security_context();
  std::string user = image_user;
  std::string group;
  if (size_t colon = user.find(':'); colon != std::string::npos) {
    group = user.substr(colon + 1);
    user = user.substr(0, colon);
  }
  if (sc.has_run_as_user()) {
    user = std::to_string(sc.run_as_user().value());
    group.clear();
  } else if (!sc.run_as_username().empty()) {
    user = sc.run_as_username();
    group.clear();
  }
  if (sc.has_run_as_group()) group = std::to_string(sc.run_as_group().value());

  std::vector<Entry> users, groups;
  if (absl::StatusOr<std::string> text = ReadFileInRoot(rootfs, "/etc/passwd"); text.ok()) {
    users = ParseDatabase(*text, false);
  }
  if (absl::StatusOr<std::string> text = ReadFileInRoot(rootfs, "/etc/group"); text.ok()) {
    groups = ParseDatabase(*text, true);
  }
  ProcessUser resolved;
  std::string user_name;
  if (user.empty()) user.assign(1, '0');  // assign of a literal trips GCC 12's -Wrestrict
  if (IsNumber(user)) {
    if (!absl::SimpleAtoi(user, &resolved.uid)) {
      return absl::InvalidArgumentError(absl::StrCat("user id ", user, " is out of range"));
    }
    for (const Entry& entry : users) {
      if (entry.id == resolved.uid) {
        resolved.gid = entry.gid;
        user_name = entry.name;
        break;
      }
    }
  } else {
    auto found = std::find_if(users.begin(), users.end(),
                              [&](const Entry& entry) { return entry.name == user; });
    if (found == users.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("user \"", user, "\" is not in the image's /etc/passwd"));
    }
    resolved.uid = found->id;
    resolved.gid = found->gid;
    user_name = found->name;
  }
  if (!group.empty()) {
    if (IsNumber(group)) {
      if (!absl::SimpleAtoi(group, &resolved.gid)) {
        return absl::InvalidArgumentError(absl::StrCat("group id ", group, " is out of range"));
      }
    } else {
      auto found = std::find_if(groups.begin(), groups.end(),
                                [&](const Entry& entry) { return entry.name == group; });
      if (found == groups.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("group \"", group, "\" is not in the image's /etc/group"));
      }
      resolved.gid = found->id;
    }
  }
  std::set<uint32_t> extra;
  if (!user_name.empty()) {
    for (const Entry& entry : groups) {
      if (std::find(entry.members.begin(), entry.members.end(), user_name) != entry.members.end()) {
        extra.insert(entry.id);
      }
    }
  }
  for (int64_t gid : sc.supplemental_groups()) extra.insert(static_cast<uint32_t>(gid));
  extra.erase(resolved.gid);
  resolved.additional_gids.assign(extra.begin(), extra.end());
  return resolved;
}

absl::StatusOr<nlohmann::json> BuildContainerSpec(const SpecInputs& in) {
  const ContainerConfig& config = *in.container;
  const runtime::v1::PodSandboxConfig& pod = *in.pod;
  const auto& sc = config.linux().security_context();
  bool privileged = sc.privileged();

  absl::StatusOr<std::vector<std::string>> args = ContainerArgs(config, in.image);
  if (!args.ok()) return args.status();
  std::vector<std::string> caps = ApplyCapabilityChanges(sc.capabilities(), privileged);

  nlohmann::json process = {
      {"terminal", config.tty()},
      {"user",
       {{"uid", in.user.uid}, {"gid", in.user.gid}, {"additionalGids", in.user.additional_gids}}},
      {"args", *args},
      {"env", ContainerEnv(config, in.image)},
      {"cwd", !config.working_dir().empty()   ? config.working_dir()
              : !in.image.working_dir.empty() ? in.image.working_dir
                                              : "/"},
      {"capabilities", {{"bounding", caps}, {"effective", caps}, {"permitted", caps}}},
      {"noNewPrivileges", sc.no_new_privs()},
  };
  if (absl::Status checked = CheckClientPath(process["cwd"].get<std::string>(), "working dir");
      !checked.ok()) {
    return checked;
  }
  const auto& resources = config.linux().resources();
  int64_t oom_score_adj = Clamp(resources.oom_score_adj(), in.min_oom_score_adj, 1000);
  process["oomScoreAdj"] = oom_score_adj;

  // Mounts: the defaults of every container, the pod's shared files, then the config's own.
  nlohmann::json mounts = nlohmann::json::array();
  std::set<std::string> taken;
  for (const runtime::v1::Mount& mount : config.mounts()) taken.insert(mount.container_path());
  auto add = [&](nlohmann::json mount) {
    if (taken.count(mount["destination"].get<std::string>()) == 0) mounts.push_back(mount);
  };
  add({{"destination", "/proc"},
       {"type", "proc"},
       {"source", "proc"},
       {"options", {"nosuid", "noexec", "nodev"}}});
  add({{"destination", "/dev"},
       {"type", "tmpfs"},
       {"source", "tmpfs"},
       {"options", {"nosuid", "strictatime", "mode=755", "size=65536k"}}});
  add({{"destination", "/dev/pts"},
       {"type", "devpts"},
       {"source", "devpts"},
       {"options", {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}}});
  add({{"destination", "/dev/mqueue"},
       {"type", "mqueue"},
       {"source", "mqueue"},
       {"options", {"nosuid", "noexec", "nodev"}}});
  add({{"destination", "/sys"},
       {"type", "sysfs"},
       {"source", "sysfs"},
       {"options", {"nosuid", "noexec", "nodev", privileged ? "rw" : "ro"}}});
  add({{"destination", "/sys/fs/cgroup"},
       {"type", "cgroup"},
       {"source", "cgroup"},
       {"options", {"nosuid", "noexec", "nodev", "relatime", privileged ? "rw" : "ro"}}});
  const std::string& pod_dir = in.pod_files.dir;
  add(BindMount("/etc/hostname", pod_dir + "/hostname", {"rbind", "rprivate", "rw"}));
  add(BindMount("/etc/hosts", pod_dir + "/hosts", {"rbind", "rprivate", "rw"}));
  add(BindMount("/etc/resolv.conf", pod_dir + "/resolv.conf", {"rbind", "rprivate", "rw"}));
  add(in.pod_files.own.ipc ? BindMount("/dev/shm", pod_dir + "/shm", {"rbind", "rprivate", "rw"})
                           : BindMount("/dev/shm", "/dev/shm", {"rbind", "rprivate", "rw"}));

  // Parents before children: a mount on /a/b must come after one on /a.
  std::vector<const runtime::v1::Mount*> own_mounts;
  for (const runtime::v1::Mount& mount : config.mounts()) own_mounts.push_back(&mount);
  std::stable_sort(own_mounts.begin(), own_mounts.end(), [](auto* a, auto* b) {
    return std::count(a->container_path().begin(), a->container_path().end(), '/') <
           std::count(b->container_path().begin(), b->container_path().end(), '/');
  });
  for (const runtime::v1::Mount* mount : own_mounts) {
    if (absl::Status checked = CheckClientPath(mount->host_path(), "mount host_path");
        !checked.ok()) {
      return checked;
    }
    if (absl::Status checked = CheckClientPath(mount->container_path(), "mount container_path");
        !checked.ok()) {
      return checked;
    }
    struct stat st {};
    if (::stat(mount->host_path().c_str(), &st) != 0) {
      if (errno != ENOENT) return base::ErrnoStatus(errno, "mount source " + mount->host_path());
      // kubelet expects a missing hostPath directory to be created.
      if (absl::Status made = base::MakeDirectories(mount->host_path(), 0755); !made.ok()) {
        return made;
      }
    }
    std::vector<std::string> options = {"rbind", mount->readonly() ? "ro" : "rw"};
    switch (mount->propagation()) {
      case runtime::v1::PROPAGATION_HOST_TO_CONTAINER:
        options.push_back("rslave");
        break;
      case runtime::v1::PROPAGATION_BIDIRECTIONAL:
        options.push_back("rshared");
        break;
      default:
        options.push_back("rprivate");
    }
    mounts.push_back(BindMount(mount->container_path(), mount->host_path(), options));
  }

  // Namespaces: the pod's (by pin path) or the host's (left out); pid and mount of its own.
  nlohmann::json namespaces = nlohmann::json::array();
  bool host_pid = sc.namespace_options().pid() == runtime::v1::NODE;
  if (!in.pid_namespace_path.empty()) {
    namespaces.push_back({{"type", "pid"}, {"path", in.pid_namespace_path}});
  } else if (!host_pid) {
    namespaces.push_back({{"type", "pid"}});
  }
  namespaces.push_back({{"type", "mount"}});
  if (in.pod_files.own.network)
    namespaces.push_back({{"type", "network"}, {"path", pod_dir + "/net"}});
  if (in.pod_files.own.ipc) namespaces.push_back({{"type", "ipc"}, {"path", pod_dir + "/ipc"}});
  if (in.pod_files.own.uts) namespaces.push_back({{"type", "uts"}, {"path", pod_dir + "/uts"}});
  if (in.cgroup_v2) namespaces.push_back({{"type", "cgroup"}});

  nlohmann::json linux = {
      {"namespaces", namespaces},
      {"cgroupsPath", in.cgroups_path},
  };
  nlohmann::json cgroup_resources = nlohmann::json::object();
  cgroup_resources["devices"] = {{{"allow", privileged}, {"access", "rwm"}}};
  if (resources.cpu_shares() > 0) cgroup_resources["cpu"]["shares"] = resources.cpu_shares();
  if (resources.cpu_quota() > 0) cgroup_resources["cpu"]["quota"] = resources.cpu_quota();
  if (resources.cpu_period() > 0) cgroup_resources["cpu"]["period"] = resources.cpu_period();
  if (!resources.cpuset_cpus().empty()) cgroup_resources["cpu"]["cpus"] = resources.cpuset_cpus();
  if (!resources.cpuset_mems().empty()) cgroup_resources["cpu"]["mems"] = resources.cpuset_mems();
  if (resources.memory_limit_in_bytes() > 0) {
    cgroup_resources["memory"]["limit"] = resources.memory_limit_in_bytes();
  }
  if (resources.memory_swap_limit_in_bytes() > 0) {
    cgroup_resources["memory"]["swap"] = resources.memory_swap_limit_in_bytes();
  }
  if (in.cgroup_v2 && !resources.unified().empty()) {
    for (const auto& [key, value] : resources.unified()) cgroup_resources["unified"][key] = value;
  }

  nlohmann::json devices = nlohmann::json::array();
  for (const runtime::v1::Device& device : config.devices()) {
    if (absl::Status checked = CheckClientPath(device.host_path(), "device host_path");
        !checked.ok()) {
      return checked;
    }
    if (absl::Status checked = CheckClientPath(device.container_path(), "device container_path");
        !checked.ok()) {
      return checked;
    }
    struct stat st {};
    if (::stat(device.host_path().c_str(), &st) != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("device ", device.host_path(), ": ", std::strerror(errno)));
    }
    if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat("device ", device.host_path(), " is not a character or block device"));
    }
    std::string type = S_ISCHR(st.st_mode) ? "c" : "b";
    int64_t major_number = major(st.st_rdev);
    int64_t minor_number = minor(st.st_rdev);
    devices.push_back({{"path", device.container_path()},
                       {"type", type},
                       {"major", major_number},
                       {"minor", minor_number},
                       {"fileMode", st.st_mode & 07777},
                       {"uid", 0},
                       {"gid", 0}});
    std::string access = device.permissions().empty() ? "rwm" : device.permissions();
    cgroup_resources["devices"].push_back({{"allow", true},
                                           {"type", type},
                                           {"major", major_number},
                                           {"minor", minor_number},
                                           {"access", access}});
  }
  linux["devices"] = devices;
  linux["resources"] = cgroup_resources;

  // Namespaced sysctls of the pod (checked at RunPodSandbox) apply in each container.
  for (const auto& [key, value] : pod.linux().sysctls()) linux["sysctl"][key] = value;

  if (!privileged) {
    std::vector<std::string> masked(sc.masked_paths().begin(), sc.masked_paths().end());
    std::vector<std::string> readonly(sc.readonly_paths().begin(), sc.readonly_paths().end());
    if (masked.empty()) {
      masked = {"/proc/acpi",
                "/proc/asound",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/proc/scsi",
                "/sys/firmware",
                "/sys/devices/virtual/powercap"};
    }
    if (readonly.empty()) {
      readonly = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"};
    }
    linux["maskedPaths"] = masked;
    linux["readonlyPaths"] = readonly;
  }
  absl::StatusOr<nlohmann::json> seccomp = SeccompFor(sc, caps);
  if (!seccomp.ok()) return seccomp.status();
  if (!seccomp->is_null()) linux["seccomp"] = *seccomp;

  nlohmann::json annotations = nlohmann::json::object();
  for (const auto& [key, value] : config.annotations()) annotations[key] = value;
  annotations["io.kubernetes.cri.container-name"] = config.metadata().name();
  annotations["io.kubernetes.cri.sandbox-name"] = pod.metadata().name();
  annotations["io.kubernetes.cri.sandbox-namespace"] = pod.metadata().namespace_();

  return nlohmann::json{
      {"ociVersion", "1.0.2"},
      {"process", process},
      {"root", {{"path", in.rootfs}, {"readonly", sc.readonly_rootfs()}}},
      {"hostname", in.pod_files.own.uts ? in.hostname : ""},
      {"mounts", mounts},
      {"linux", linux},
      {"annotations", annotations},
  };
}

}  // namespace kapal::cri
