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

// What kapald learns about the host at start, so that pods fail with a reason, not obscurely.
struct HostFacts {
  CgroupLayout cgroup_layout = CgroupLayout::kV1;
  bool systemd_running = false;
  bool ip_forward = false;
  std::string kernel_release;
};

// Reads the facts below ROOT ("/" on a real host; a prepared directory in tests).
HostFacts DetectHostFacts(const std::string& root = "/");

// `auto` picks systemd exactly when systemd runs the host, as kubeadm configures kubelet.
CgroupDriver ResolveCgroupDriver(CgroupDriverSetting setting, const HostFacts& facts);

absl::string_view CgroupLayoutName(CgroupLayout layout);
absl::string_view CgroupDriverName(CgroupDriver driver);
nlohmann::json HostFactsToJson(const HostFacts& facts);

}  // namespace kapal::runtime
