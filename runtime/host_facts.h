#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "runtime/options.h"

namespace kapal::runtime {

enum class CgroupLayout {
  kV1,      // only v1 hierarchies
  kHybrid,  // v1 controllers, with v2 mounted at /sys/fs/cgroup/unified
  kV2,      // unified hierarchy only
};

enum class CgroupDriver { kCgroupfs, kSystemd };

// What the host's cgroups can limit beyond cpu, cpuset, memory and pids. kubelet asks for a
// hugepage limit of every page size the node has, whether or not a hugetlb controller is
// mounted; runc refuses a container whose limit it cannot set, so a limit for a missing
// controller is left out (containerd's tolerate_missing_hugetlb_controller, on by default).
struct CgroupSupport {
  bool v2 = false;       // the unified hierarchy holds the controllers (not hybrid)
  bool hugetlb = false;  // a hugetlb controller runc can use
  bool swap = false;     // memory+swap limits (v1 memory.memsw.*, v2 memory.swap.max)
};

// What kapald learns about the host at start, so that pods fail with a reason, not obscurely.
struct HostFacts {
  CgroupLayout cgroup_layout = CgroupLayout::kV1;
  CgroupSupport cgroups;
  bool systemd_running = false;
  bool ip_forward = false;
  std::string kernel_release;
};

// Reads the facts below ROOT ("/" on a real host; a prepared directory in tests).
HostFacts DetectHostFacts(const std::string& root = "/");

// The v1 hierarchy below ROOT (/sys/fs/cgroup) that has CONTROLLER: ROOT/CONTROLLER, or a
// co-mounted one such as ROOT/cpu,cpuacct; ROOT/CONTROLLER when there is none.
std::string V1Hierarchy(const std::string& root, const std::string& controller);

// `auto` picks systemd exactly when systemd runs the host, as kubeadm configures kubelet.
CgroupDriver ResolveCgroupDriver(CgroupDriverSetting setting, const HostFacts& facts);

absl::string_view CgroupLayoutName(CgroupLayout layout);
absl::string_view CgroupDriverName(CgroupDriver driver);
nlohmann::json HostFactsToJson(const HostFacts& facts);

}  // namespace kapal::runtime
