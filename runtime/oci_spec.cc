#include "runtime/oci_spec.h"

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
#include "runtime/security.h"

namespace kapal::runtime {

namespace {

using runtime::v1::ContainerConfig;

nlohmann::json BindMount(const std::string& destination, const std::string& source,
                         std::vector<std::string> options) {
  return {{"destination", destination}, {"type", "bind"}, {"source", source}, {"options", options}};
}

// The host's device nodes under /dev, as a privileged container sees them (containerd's
// WithHostDevices): the pseudo-terminal, shared-memory and queue mounts are the container's own.
nlohmann::json HostDevices() {
  nlohmann::json devices = nlohmann::json::array();
  std::vector<std::string> pending = {"/dev"};
  while (!pending.empty()) {
    std::string dir = pending.back();
    pending.pop_back();
    absl::StatusOr<std::vector<std::string>> entries = base::ListDirectory(dir);
    if (!entries.ok()) continue;
    for (const std::string& name : *entries) {
      std::string path = dir + "/" + name;
      if (path == "/dev/pts" || path == "/dev/shm" || path == "/dev/mqueue" ||
          path == "/dev/console" || path == "/dev/ptmx") {
        continue;
      }
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0) continue;
      if (S_ISDIR(st.st_mode)) {
        pending.push_back(path);
        continue;
      }
      if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) continue;
      int64_t major_number = major(st.st_rdev);
      int64_t minor_number = minor(st.st_rdev);
      devices.push_back({{"path", path},
                         {"type", S_ISCHR(st.st_mode) ? "c" : "b"},
                         {"major", major_number},
                         {"minor", minor_number},
                         {"fileMode", st.st_mode & 07777},
                         {"uid", st.st_uid},
                         {"gid", st.st_gid}});
    }
  }
  return devices;
}

int64_t Clamp(int64_t value, int64_t low, int64_t high) {
  return std::max(low, std::min(value, high));
}

}  // namespace

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

nlohmann::json CgroupResources(const runtime::v1::LinuxContainerResources& resources,
                               const CgroupSupport& support) {
  nlohmann::json out = nlohmann::json::object();
  if (resources.cpu_shares() > 0) out["cpu"]["shares"] = resources.cpu_shares();
  if (resources.cpu_quota() > 0) out["cpu"]["quota"] = resources.cpu_quota();
  if (resources.cpu_period() > 0) out["cpu"]["period"] = resources.cpu_period();
  if (!resources.cpuset_cpus().empty()) out["cpu"]["cpus"] = resources.cpuset_cpus();
  if (!resources.cpuset_mems().empty()) out["cpu"]["mems"] = resources.cpuset_mems();
  if (resources.memory_limit_in_bytes() > 0) {
    out["memory"]["limit"] = resources.memory_limit_in_bytes();
  }
  if (resources.memory_swap_limit_in_bytes() > 0 && support.swap) {
    out["memory"]["swap"] = resources.memory_swap_limit_in_bytes();
  }
  if (support.hugetlb) {
    for (const runtime::v1::HugepageLimit& hugepage : resources.hugepage_limits()) {
      out["hugepageLimits"].push_back(
          {{"pageSize", hugepage.page_size()}, {"limit", hugepage.limit()}});
    }
  }
  // unified keys are cgroup v2 files; v1 has no place for them.
  if (support.v2) {
    for (const auto& [key, value] : resources.unified()) out["unified"][key] = value;
  }
  return out;
}

absl::StatusOr<nlohmann::json> BuildContainerSpec(const SpecInputs& in) {
  const ContainerConfig& config = *in.container;
  const runtime::v1::PodSandboxConfig& pod = *in.pod;
  const auto& sc = config.linux().security_context();
  bool privileged = sc.privileged();

  absl::StatusOr<std::vector<std::string>> args = ContainerArgs(config, in.image);
  if (!args.ok()) return args.status();
  absl::StatusOr<std::vector<std::string>> container_caps =
      ContainerCapabilities(sc.capabilities(), privileged, in.held_capabilities);
  if (!container_caps.ok()) return container_caps.status();
  const std::vector<std::string>& caps = *container_caps;

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

  std::string root_propagation;  // as containerd: rshared or rslave when a mount needs it
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
    if (mount->recursive_read_only()) {
      // KEP-3857: every mount below the source read-only too (mount_setattr with
      // AT_RECURSIVE, runc's "rro"); only meaningful for a private read-only bind.
      if (!mount->readonly()) {
        return absl::InvalidArgumentError(absl::StrCat("mount ", mount->container_path(),
                                                       ": recursive_read_only needs readonly too"));
      }
      if (mount->propagation() != runtime::v1::PROPAGATION_PRIVATE) {
        return absl::InvalidArgumentError(
            absl::StrCat("mount ", mount->container_path(),
                         ": recursive_read_only needs private propagation, not ",
                         runtime::v1::MountPropagation_Name(mount->propagation())));
      }
      options.push_back("rro");
    }
    switch (mount->propagation()) {
      case runtime::v1::PROPAGATION_HOST_TO_CONTAINER:
        options.push_back("rslave");
        // Propagation into a mount needs the container's root to receive it too.
        if (root_propagation.empty()) root_propagation = "rslave";
        break;
      case runtime::v1::PROPAGATION_BIDIRECTIONAL:
        options.push_back("rshared");
        root_propagation = "rshared";
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
  // The user namespace first (runc joins in this order): the others belong to it.
  if (!in.user_namespace_path.empty()) {
    nlohmann::json user = {{"type", "user"}, {"path", in.user_namespace_path}};
    namespaces.insert(namespaces.begin(), user);
  }
  namespaces.push_back({{"type", "mount"}});
  if (in.pod_files.own.network)
    namespaces.push_back({{"type", "network"}, {"path", pod_dir + "/net"}});
  if (in.pod_files.own.ipc) namespaces.push_back({{"type", "ipc"}, {"path", pod_dir + "/ipc"}});
  if (in.pod_files.own.uts) namespaces.push_back({{"type", "uts"}, {"path", pod_dir + "/uts"}});
  if (in.cgroups.v2) namespaces.push_back({{"type", "cgroup"}});

  nlohmann::json linux = {
      {"namespaces", namespaces},
      {"cgroupsPath", in.cgroups_path},
  };
  if (!root_propagation.empty()) linux["rootfsPropagation"] = root_propagation;
  if (!in.user_namespace_path.empty()) {
    // runc needs the mappings of a user namespace it joins too (it chowns /dev and the
    // console for the container's root by them).
    for (const auto& [field, maps] : {std::pair{"uidMappings", &in.user_mappings.uids},
                                      std::pair{"gidMappings", &in.user_mappings.gids}}) {
      nlohmann::json list = nlohmann::json::array();
      for (const IdMap& map : *maps) {
        list.push_back(
            {{"containerID", map.container_id}, {"hostID", map.host_id}, {"size", map.length}});
      }
      linux[field] = list;
    }
  }
  nlohmann::json cgroup_resources = CgroupResources(resources, in.cgroups);
  cgroup_resources["devices"] = {{{"allow", privileged}, {"access", "rwm"}}};

  nlohmann::json devices = nlohmann::json::array();
  // A privileged container gets the host's devices (and the device cgroup allows all).
  if (privileged) devices = HostDevices();
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

}  // namespace kapal::runtime
