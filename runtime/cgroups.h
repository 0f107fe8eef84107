#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "runtime/host_facts.h"
#include "runtime/records.h"

namespace kapal::runtime {

// Where a pod's and its containers' cgroups are, for one cgroup driver and layout.
class Cgroups {
 public:
  Cgroups(CgroupDriver driver, CgroupLayout layout, CgroupSupport support)
      : driver_(driver), layout_(layout), support_(support) {}

  // The pod's cgroup parent: the config's cgroup_parent (kubelet's), else /kapal/POD_ID
  // (cgroupfs) or kapal.slice (systemd).
  std::string PodParent(const Pod& pod) const;
  // The container's cgroupsPath as the OCI runtime takes it: PARENT/ID for cgroupfs,
  // SLICE:kapal:ID for systemd.
  std::string ContainerPath(const Pod& pod, const std::string& container_id) const;
  // The directory of a cgroupsPath (or parent) below a hierarchy's mount ("/kapal/p/c",
  // "/kapal.slice/kapal-c.scope").
  std::string Directory(const std::string& cgroups_path) const;
  // The file counting OOM kills of a container's cgroup ("" when unknown).
  std::string OomFile(const std::string& cgroups_path) const;
  // Whether the freezer holds a cgroupsPath frozen (v1 freezer.state FROZEN, v2 cgroup.freeze 1).
  bool Frozen(const std::string& cgroups_path) const;
  // Removes the parent kapal made up for the pod, /kapal/POD_ID (never kubelet's own, never
  // the shared /kapal, which other pods may be starting in).
  void RemovePodParent(const Pod& pod) const;

  // Makes the shared parent /kapal of every hierarchy 0755 where an older kapald (whose runc
  // ran with kapald's umask 077) left it 0700: a container in a user namespace must be able to
  // reach its own cgroup below it.
  void OpenUpSharedParent() const;

  // Sets the cpu and memory limits of LIMITS (the pod's resources plus its overhead) on the
  // pod's own parent /kapal/POD_ID (made when no container has made it yet). A parent kubelet
  // gave (cgroup_parent) is kubelet's to size: it is left alone, as it is with the systemd
  // driver. FAILED_PRECONDITION when the kernel refuses a value (a memory limit below usage).
  absl::Status ApplyPodLimits(const Pod& pod,
                              const runtime::v1::LinuxContainerResources& limits) const;

  bool V2() const { return layout_ == CgroupLayout::kV2; }
  const CgroupSupport& Support() const { return support_; }

 private:
  CgroupDriver driver_;
  CgroupLayout layout_;
  CgroupSupport support_;
};

// One reading of a cgroup's counters; a counter the host does not have stays unset.
struct CgroupSample {
  std::optional<uint64_t> cpu_usage_ns;  // cumulative core-nanoseconds
  std::optional<uint64_t> memory_usage;
  std::optional<uint64_t> memory_working_set;  // usage without inactive file pages
  std::optional<uint64_t> memory_rss;
  std::optional<uint64_t> memory_limit;  // unset when unlimited
  std::optional<uint64_t> page_faults;
  std::optional<uint64_t> major_page_faults;
  std::optional<uint64_t> processes;
  // More of the same files, for the cAdvisor-style metrics (ListPodSandboxMetrics).
  std::optional<uint64_t> cpu_user_ns;
  std::optional<uint64_t> cpu_system_ns;
  std::optional<uint64_t> cfs_periods;
  std::optional<uint64_t> cfs_throttled_periods;
  std::optional<uint64_t> cfs_throttled_ns;
  std::optional<uint64_t> memory_cache;
  std::optional<uint64_t> memory_mapped_file;
  std::optional<uint64_t> memory_swap;
  std::optional<uint64_t> memory_failcnt;    // times the limit was hit
  std::optional<uint64_t> memory_max_usage;  // the peak
  std::optional<uint64_t> oom_kills;
  std::optional<uint64_t> processes_limit;  // unset when unlimited
  // Bytes read from and written to block devices, all devices summed (docker stats' BLOCK I/O).
  std::optional<uint64_t> io_read_bytes;
  std::optional<uint64_t> io_write_bytes;
};

// Reads the cgroup at DIRECTORY (see Cgroups::Directory) below ROOT: v1 controllers (cpuacct,
// memory, pids) or the v2 unified files. NOT_FOUND when the cgroup does not exist.
absl::StatusOr<CgroupSample> ReadCgroup(CgroupLayout layout, const std::string& directory,
                                        const std::string& root = "/sys/fs/cgroup");

}  // namespace kapal::runtime
