#include "runtime/security.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/files.h"
#include "runtime/oci_spec.h"

namespace kapal::runtime {

namespace {

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

}  // namespace

const std::vector<std::string>& DefaultCapabilities() {
  static const std::vector<std::string> kDefault = {
      "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
      "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
      "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
      "CAP_KILL",    "CAP_AUDIT_WRITE"};
  return kDefault;
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

}  // namespace kapal::runtime
