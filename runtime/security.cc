#include "runtime/security.h"

#include <algorithm>
#include <cstdlib>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/files.h"
#include "runtime/oci_spec.h"

namespace kapal::runtime {

namespace {

constexpr int kEperm = 1;
constexpr int kEnosys = 38;
// clone(2) flags that make new namespaces: CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER |
// NEWPID | NEWNET. Without CAP_SYS_ADMIN a container may clone only without them.
constexpr uint64_t kCloneNamespaceFlags = 0x7E020000;

// System calls every container may make.
const std::vector<std::string>& AlwaysAllowed() {
  static const std::vector<std::string> kNames = [] {
    // One name after another, kept as text so the list reads as the table it is.
    constexpr char kList[] = R"(
        accept accept4 access adjtimex alarm bind brk cachestat capget capset chdir chmod chown
        chown32 clock_adjtime clock_adjtime64 clock_getres clock_getres_time64 clock_gettime
        clock_gettime64 clock_nanosleep clock_nanosleep_time64 close close_range connect
        copy_file_range creat dup dup2 dup3 epoll_create epoll_create1 epoll_ctl epoll_ctl_old
        epoll_pwait epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 execve execveat exit
        exit_group faccessat faccessat2 fadvise64 fadvise64_64 fallocate fanotify_mark fchdir fchmod
        fchmodat fchmodat2 fchown fchown32 fchownat fcntl fcntl64 fdatasync fgetxattr flistxattr
        flock fork fremovexattr fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 fsync ftruncate
        ftruncate64 futex futex_requeue futex_time64 futex_wait futex_waitv futex_wake futimesat
        get_robust_list get_thread_area getcpu getcwd getdents getdents64 getegid getegid32 geteuid
        geteuid32 getgid getgid32 getgroups getgroups32 getitimer getpeername getpgid getpgrp getpid
        getppid getpriority getrandom getresgid getresgid32 getresuid getresuid32 getrlimit
        getrusage getsid getsockname getsockopt gettid gettimeofday getuid getuid32 getxattr
        inotify_add_watch inotify_init inotify_init1 inotify_rm_watch io_cancel io_destroy
        io_getevents io_pgetevents io_pgetevents_time64 io_setup io_submit ioctl ioprio_get
        ioprio_set ipc kill landlock_add_rule landlock_create_ruleset landlock_restrict_self lchown
        lchown32 lgetxattr link linkat listen listxattr llistxattr _llseek lremovexattr lseek
        lsetxattr lstat lstat64 madvise map_shadow_stack membarrier memfd_create memfd_secret
        mincore mkdir mkdirat mknod mknodat mlock mlock2 mlockall mmap mmap2 mprotect mq_getsetattr
        mq_notify mq_open mq_timedreceive mq_timedreceive_time64 mq_timedsend mq_timedsend_time64
        mq_unlink mremap msgctl msgget msgrcv msgsnd msync munlock munlockall munmap nanosleep
        newfstatat _newselect open openat openat2 pause pidfd_open pidfd_send_signal pipe pipe2
        pkey_alloc pkey_free pkey_mprotect poll ppoll ppoll_time64 prctl pread64 preadv preadv2
        prlimit64 process_mrelease pselect6 pselect6_time64 ptrace pwrite64 pwritev pwritev2 read
        readahead readlink readlinkat readv recv recvfrom recvmmsg recvmmsg_time64 recvmsg
        remap_file_pages removexattr rename renameat renameat2 restart_syscall rmdir rseq
        rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo rt_sigreturn rt_sigsuspend
        rt_sigtimedwait rt_sigtimedwait_time64 rt_tgsigqueueinfo sched_get_priority_max
        sched_get_priority_min sched_getaffinity sched_getattr sched_getparam sched_getscheduler
        sched_rr_get_interval sched_rr_get_interval_time64 sched_setaffinity sched_setattr
        sched_setparam sched_setscheduler sched_yield seccomp select semctl semget semop semtimedop
        semtimedop_time64 send sendfile sendfile64 sendmmsg sendmsg sendto set_robust_list
        set_thread_area set_tid_address setfsgid setfsgid32 setfsuid setfsuid32 setgid setgid32
        setgroups setgroups32 setitimer setpgid setpriority setregid setregid32 setresgid
        setresgid32 setresuid setresuid32 setreuid setreuid32 setrlimit setsid setsockopt setuid
        setuid32 setxattr shmat shmctl shmdt shmget shutdown sigaltstack signalfd signalfd4
        sigprocmask sigreturn socket socketcall socketpair splice stat stat64 statfs statfs64 statx
        symlink symlinkat sync sync_file_range syncfs sysinfo tee tgkill time timer_create
        timer_delete timer_getoverrun timer_gettime timer_gettime64 timer_settime timer_settime64
        timerfd_create timerfd_gettime timerfd_gettime64 timerfd_settime timerfd_settime64 times
        tkill truncate truncate64 ugetrlimit umask uname unlink unlinkat utime utimensat
        utimensat_time64 utimes vfork vmsplice wait4 waitid waitpid write writev
    )";
    std::vector<std::string> names =
        absl::StrSplit(kList, absl::ByAnyChar(" \n"), absl::SkipWhitespace());
#if defined(__x86_64__) || defined(__i386__)
    names.insert(names.end(), {"arch_prctl", "modify_ldt"});
#endif
#if defined(__aarch64__) || defined(__arm__)
    names.insert(names.end(), {"arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2",
                               "breakpoint", "cacheflush", "set_tls"});
#endif
    return names;
  }();
  return kNames;
}

// System calls allowed only with a capability: each is what the capability is about.
const std::vector<std::pair<std::string, std::vector<std::string>>>& AllowedWithCapability() {
  static const std::vector<std::pair<std::string, std::vector<std::string>>> kByCapability = {
      {"CAP_SYS_ADMIN",
       {"bpf",
        "clone",
        "clone3",
        "fanotify_init",
        "fsconfig",
        "fsmount",
        "fsopen",
        "fspick",
        "lookup_dcookie",
        "mount",
        "mount_setattr",
        "move_mount",
        "name_to_handle_at",
        "open_tree",
        "perf_event_open",
        "pivot_root",
        "quotactl",
        "quotactl_fd",
        "setdomainname",
        "sethostname",
        "setns",
        "syslog",
        "umount",
        "umount2",
        "unshare"}},
      {"CAP_SYS_BOOT", {"reboot"}},
      {"CAP_SYS_CHROOT", {"chroot"}},
      {"CAP_SYS_MODULE", {"delete_module", "init_module", "finit_module"}},
      {"CAP_SYS_PACCT", {"acct"}},
      {"CAP_SYS_PTRACE",
       {"kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev"}},
      {"CAP_SYS_RAWIO", {"iopl", "ioperm"}},
      {"CAP_SYS_TIME", {"settimeofday", "stime", "clock_settime", "clock_settime64"}},
      {"CAP_SYS_TTY_CONFIG", {"vhangup"}},
      {"CAP_SYS_NICE", {"get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"}},
      {"CAP_SYSLOG", {"syslog"}},
      {"CAP_BPF", {"bpf"}},
      {"CAP_PERFMON", {"perf_event_open"}},
      {"CAP_DAC_READ_SEARCH", {"open_by_handle_at"}},
  };
  return kByCapability;
}

// The seccomp architectures of this machine: the native one and the compat ones it runs. A
// filter per foreign architecture would only cost time at every container start.
std::vector<std::string> NativeArchitectures() {
#if defined(__x86_64__)
  return {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"};
#elif defined(__aarch64__)
  return {"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"};
#else
  return {};  // libseccomp's native one
#endif
}

bool Has(const std::vector<std::string>& list, const std::string& item) {
  return std::find(list.begin(), list.end(), item) != list.end();
}

// Reads a capability mask line ("CapEff:") of /proc/self/status; nullopt when not there.
std::optional<uint64_t> StatusMask(const std::string& status, absl::string_view field) {
  size_t at = status.find(absl::StrCat(field, ":\t"));
  if (at == std::string::npos) return std::nullopt;
  return std::strtoull(status.c_str() + at + field.size() + 2, nullptr, 16);
}

absl::StatusOr<nlohmann::json> LoadProfile(const std::string& path,
                                           const std::vector<std::string>& caps) {
  if (absl::Status checked = CheckClientPath(path, "seccomp localhost profile"); !checked.ok()) {
    return checked;
  }
  absl::StatusOr<std::string> text = base::ReadFile(path);
  if (!text.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("seccomp localhost profile: ", text.status().message()));
  }
  nlohmann::json profile = nlohmann::json::parse(*text, nullptr, false);
  if (!profile.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat("seccomp profile ", path, " is not a JSON object"));
  }
  absl::StatusOr<nlohmann::json> converted = ToOciSeccomp(profile, caps);
  if (!converted.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("seccomp profile ", path, ": ", converted.status().message()));
  }
  return converted;
}

}  // namespace

const std::vector<std::string>& KnownCapabilities() {
  static const std::vector<std::string> kNames = {"CAP_CHOWN",
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
  return kNames;
}

std::vector<std::string> CapabilitiesInMask(uint64_t mask) {
  std::vector<std::string> caps;
  const std::vector<std::string>& known = KnownCapabilities();
  for (size_t bit = 0; bit < known.size(); ++bit) {
    if ((mask >> bit) & 1) caps.push_back(known[bit]);
  }
  return caps;
}

std::vector<std::string> HeldCapabilities() {
  absl::StatusOr<std::string> status = base::ReadFile("/proc/self/status");
  if (!status.ok()) return KnownCapabilities();
  uint64_t effective = StatusMask(*status, "CapEff").value_or(~uint64_t{0});
  uint64_t bounding = StatusMask(*status, "CapBnd").value_or(~uint64_t{0});
  return CapabilitiesInMask(effective & bounding);
}

const std::vector<std::string>& DefaultCapabilities() {
  static const std::vector<std::string> kDefault = {
      "CAP_CHOWN",   "CAP_DAC_OVERRIDE", "CAP_FSETID",           "CAP_FOWNER",
      "CAP_MKNOD",   "CAP_NET_RAW",      "CAP_SETGID",           "CAP_SETUID",
      "CAP_SETFCAP", "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT",
      "CAP_KILL",    "CAP_AUDIT_WRITE"};
  return kDefault;
}

absl::StatusOr<std::vector<std::string>> ContainerCapabilities(
    const runtime::v1::Capability& changes, bool privileged, const std::vector<std::string>& held) {
  if (privileged) return held;
  auto normalize = [](const std::string& name) {
    std::string upper = absl::AsciiStrToUpper(name);
    return absl::StartsWith(upper, "CAP_") || upper == "ALL" ? upper : "CAP_" + upper;
  };
  std::vector<std::string> caps;
  for (const std::string& name : DefaultCapabilities()) {
    if (Has(held, name)) caps.push_back(name);
  }
  for (const std::string& add : changes.add_capabilities()) {
    std::string name = normalize(add);
    if (name == "ALL") {
      caps = held;
      continue;
    }
    if (!Has(KnownCapabilities(), name)) {
      return absl::InvalidArgumentError(absl::StrCat("unknown capability \"", add, "\""));
    }
    if (!Has(held, name)) {
      return absl::FailedPreconditionError(
          absl::StrCat("capability ", name,
                       " cannot be granted: kapald does not hold it on this host (its bounding set "
                       "lacks it)"));
    }
    if (!Has(caps, name)) caps.push_back(name);
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

nlohmann::json DefaultSeccompProfile(const std::vector<std::string>& caps) {
  std::set<std::string> allowed(AlwaysAllowed().begin(), AlwaysAllowed().end());
  for (const auto& [cap, names] : AllowedWithCapability()) {
    if (Has(caps, cap)) allowed.insert(names.begin(), names.end());
  }
  nlohmann::json syscalls = nlohmann::json::array();
  syscalls.push_back({{"names", std::vector<std::string>(allowed.begin(), allowed.end())},
                      {"action", "SCMP_ACT_ALLOW"}});
  // Execution domains: only Linux's own (and the query), so no personality turns off ASLR.
  for (uint64_t persona : {0x0ULL, 0x8ULL, 0x20000ULL, 0x20008ULL, 0xffffffffULL}) {
    syscalls.push_back(
        {{"names", {"personality"}},
         {"action", "SCMP_ACT_ALLOW"},
         {"args", {{{"index", 0}, {"value", persona}, {"valueTwo", 0}, {"op", "SCMP_CMP_EQ"}}}}});
  }
  if (!Has(caps, "CAP_SYS_ADMIN")) {
    // Threads and processes, but no new namespaces.
    syscalls.push_back({{"names", {"clone"}},
                        {"action", "SCMP_ACT_ALLOW"},
                        {"args",
                         {{{"index", 0},
                           {"value", kCloneNamespaceFlags},
                           {"valueTwo", 0},
                           {"op", "SCMP_CMP_MASKED_EQ"}}}}});
    // clone3's flags are behind a pointer a filter cannot read: ENOSYS makes glibc fall back
    // to clone, which the rule above checks.
    syscalls.push_back(
        {{"names", {"clone3"}}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", kEnosys}});
  }
  return {{"defaultAction", "SCMP_ACT_ERRNO"},
          {"defaultErrnoRet", kEperm},
          {"architectures", NativeArchitectures()},
          {"syscalls", syscalls}};
}

absl::StatusOr<nlohmann::json> ToOciSeccomp(const nlohmann::json& profile,
                                            const std::vector<std::string>& caps) {
  if (!profile.contains("defaultAction") || !profile["defaultAction"].is_string()) {
    return absl::InvalidArgumentError("it has no defaultAction");
  }
  nlohmann::json oci = {{"defaultAction", profile["defaultAction"]}};
  if (profile.contains("defaultErrnoRet")) oci["defaultErrnoRet"] = profile["defaultErrnoRet"];
  if (profile.contains("flags")) oci["flags"] = profile["flags"];
  if (profile.contains("listenerPath")) oci["listenerPath"] = profile["listenerPath"];
  std::vector<std::string> native = NativeArchitectures();
  std::vector<std::string> architectures;
  if (profile.contains("architectures") && profile["architectures"].is_array()) {
    architectures = profile["architectures"].get<std::vector<std::string>>();
  }
  if (profile.contains("archMap") && profile["archMap"].is_array()) {
    // Docker's format: each entry names an architecture and the ones it also runs; only this
    // machine's own entry applies.
    for (const nlohmann::json& entry : profile["archMap"]) {
      std::string arch = entry.value("architecture", "");
      if (native.empty() || arch != native.front()) continue;
      architectures.push_back(arch);
      for (const nlohmann::json& sub : entry.value("subArchitectures", nlohmann::json::array())) {
        if (sub.is_string()) architectures.push_back(sub.get<std::string>());
      }
    }
  }
  if (!architectures.empty()) oci["architectures"] = architectures;
  std::string machine = native.empty() ? "" : native.front();
  auto arch_is_here = [&](const nlohmann::json& arch) {
    if (!arch.is_string()) return false;
    std::string name = arch.get<std::string>();
    return name == machine || absl::StrCat("SCMP_ARCH_", absl::AsciiStrToUpper(name)) == machine ||
           (name == "amd64" && machine == "SCMP_ARCH_X86_64") ||
           (name == "arm64" && machine == "SCMP_ARCH_AARCH64");
  };
  auto list = [](const nlohmann::json& rule, const char* condition, const char* key) {
    if (!rule.contains(condition) || !rule[condition].is_object()) return nlohmann::json::array();
    nlohmann::json items = rule[condition].value(key, nlohmann::json::array());
    return items.is_array() ? items : nlohmann::json::array();
  };
  // Docker's conditions: a rule is for these arches (any) and needs these caps (all), and is
  // not for those arches or for a container with any of those caps.
  auto applies = [&](const nlohmann::json& rule) {
    nlohmann::json arches = list(rule, "includes", "arches");
    if (!arches.empty() && std::none_of(arches.begin(), arches.end(), arch_is_here)) return false;
    for (const nlohmann::json& cap : list(rule, "includes", "caps")) {
      if (!cap.is_string() || !Has(caps, cap.get<std::string>())) return false;
    }
    nlohmann::json excluded = list(rule, "excludes", "arches");
    if (std::any_of(excluded.begin(), excluded.end(), arch_is_here)) return false;
    for (const nlohmann::json& cap : list(rule, "excludes", "caps")) {
      if (cap.is_string() && Has(caps, cap.get<std::string>())) return false;
    }
    return true;
  };
  nlohmann::json syscalls = nlohmann::json::array();
  for (const nlohmann::json& rule : profile.value("syscalls", nlohmann::json::array())) {
    if (!rule.is_object()) return absl::InvalidArgumentError("a syscalls entry is not an object");
    if (!applies(rule)) continue;
    nlohmann::json out = nlohmann::json::object();
    if (rule.contains("names")) {
      out["names"] = rule["names"];
    } else if (rule.contains("name")) {
      out["names"] = nlohmann::json::array({rule["name"]});
    } else {
      return absl::InvalidArgumentError("a syscalls entry names no system call");
    }
    if (!rule.contains("action")) {
      return absl::InvalidArgumentError("a syscalls entry has no action");
    }
    for (const char* key : {"action", "errnoRet", "args"}) {
      if (rule.contains(key)) out[key] = rule[key];
    }
    syscalls.push_back(out);
  }
  oci["syscalls"] = syscalls;
  return oci;
}

absl::StatusOr<nlohmann::json> SeccompFor(const runtime::v1::LinuxContainerSecurityContext& sc,
                                          const std::vector<std::string>& caps) {
  if (sc.privileged()) return nlohmann::json();
  using Profile = runtime::v1::SecurityProfile;
  if (sc.has_seccomp()) {
    switch (sc.seccomp().profile_type()) {
      case Profile::Unconfined:
        return nlohmann::json();
      case Profile::Localhost:
        return LoadProfile(sc.seccomp().localhost_ref(), caps);
      case Profile::RuntimeDefault:
        return DefaultSeccompProfile(caps);
      default:
        return absl::InvalidArgumentError(
            absl::StrCat("unknown seccomp profile type ", sc.seccomp().profile_type()));
    }
  }
  // The deprecated string field, as kubelets before 1.19 send it.
  const std::string& legacy = sc.seccomp_profile_path();
  if (legacy.empty() || legacy == "unconfined") return nlohmann::json();
  if (legacy == "runtime/default" || legacy == "docker/default") {
    return DefaultSeccompProfile(caps);
  }
  if (absl::StartsWith(legacy, "localhost/")) {
    return LoadProfile(legacy.substr(std::string("localhost/").size()), caps);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("seccomp profile \"", legacy,
                   "\" is not unconfined, runtime/default, docker/default or localhost/PATH"));
}

}  // namespace kapal::runtime
