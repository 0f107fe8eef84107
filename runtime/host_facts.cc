#include "runtime/host_facts.h"

#include <sys/stat.h>
#include <sys/utsname.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/files.h"

namespace kapal::runtime {

namespace {

bool Exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

bool IsDirectory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

// The controllers of a v2 hierarchy: its cgroup.controllers ("cpuset cpu io memory ...").
bool HasV2Controller(const std::string& cgroup_root, absl::string_view controller) {
  absl::StatusOr<std::string> text = base::ReadFile(cgroup_root + "/cgroup.controllers");
  if (!text.ok()) return false;
  for (absl::string_view name : absl::StrSplit(*text, absl::ByAnyChar(" \n"), absl::SkipEmpty())) {
    if (name == controller) return true;
  }
  return false;
}

// memory.swap.max exists in every non-root cgroup of a kernel with swap accounting; the root
// has none, so one child is looked at.
bool HasV2SwapAccounting(const std::string& cgroup_root) {
  absl::StatusOr<std::vector<std::string>> names = base::ListDirectory(cgroup_root);
  if (!names.ok()) return false;
  for (const std::string& name : *names) {
    std::string child = absl::StrCat(cgroup_root, "/", name);
    if (IsDirectory(child)) return Exists(child + "/memory.swap.max");
  }
  return false;
}

CgroupSupport DetectCgroupSupport(const std::string& prefix, CgroupLayout layout) {
  std::string cgroup_root = prefix + "/sys/fs/cgroup";
  CgroupSupport support;
  if (layout == CgroupLayout::kV2) {
    support.v2 = true;
    support.hugetlb = HasV2Controller(cgroup_root, "hugetlb");
    support.swap = HasV2Controller(cgroup_root, "memory") && HasV2SwapAccounting(cgroup_root);
    return support;
  }
  // runc puts each v1 controller in its own hierarchy (hybrid too: the unified one only
  // tracks processes there), so a controller is usable when its hierarchy is mounted.
  support.hugetlb = Exists(V1Hierarchy(cgroup_root, "hugetlb") + "/cgroup.procs");
  support.swap = Exists(V1Hierarchy(cgroup_root, "memory") + "/memory.memsw.limit_in_bytes");
  return support;
}

}  // namespace

std::string V1Hierarchy(const std::string& root, const std::string& controller) {
  std::string own = absl::StrCat(root, "/", controller);
  if (Exists(own)) return own;
  absl::StatusOr<std::vector<std::string>> names = base::ListDirectory(root);
  if (names.ok()) {
    for (const std::string& name : *names) {
      for (absl::string_view part : absl::StrSplit(name, ',')) {
        if (part == controller) return absl::StrCat(root, "/", name);
      }
    }
  }
  return own;
}

HostFacts DetectHostFacts(const std::string& root) {
  std::string prefix = root == "/" ? "" : root;
  HostFacts facts;
  if (Exists(prefix + "/sys/fs/cgroup/cgroup.controllers")) {
    facts.cgroup_layout = CgroupLayout::kV2;
  } else if (Exists(prefix + "/sys/fs/cgroup/unified/cgroup.controllers")) {
    facts.cgroup_layout = CgroupLayout::kHybrid;
  } else {
    facts.cgroup_layout = CgroupLayout::kV1;
  }
  facts.cgroups = DetectCgroupSupport(prefix, facts.cgroup_layout);
  // sd_booted() checks the same directory.
  facts.systemd_running = IsDirectory(prefix + "/run/systemd/system");
  if (auto forward = base::ReadFile(prefix + "/proc/sys/net/ipv4/ip_forward"); forward.ok()) {
    facts.ip_forward = absl::StripAsciiWhitespace(*forward) == "1";
  }
  if (auto release = base::ReadFile(prefix + "/proc/sys/kernel/osrelease"); release.ok()) {
    facts.kernel_release = std::string(absl::StripAsciiWhitespace(*release));
  } else if (struct utsname names{}; root == "/" && ::uname(&names) == 0) {
    facts.kernel_release = names.release;
  }
  return facts;
}

CgroupDriver ResolveCgroupDriver(CgroupDriverSetting setting, const HostFacts& facts) {
  switch (setting) {
    case CgroupDriverSetting::kCgroupfs:
      return CgroupDriver::kCgroupfs;
    case CgroupDriverSetting::kSystemd:
      return CgroupDriver::kSystemd;
    case CgroupDriverSetting::kAuto:
      break;
  }
  return facts.systemd_running ? CgroupDriver::kSystemd : CgroupDriver::kCgroupfs;
}

absl::string_view CgroupLayoutName(CgroupLayout layout) {
  switch (layout) {
    case CgroupLayout::kV1:
      return "v1";
    case CgroupLayout::kHybrid:
      return "hybrid";
    case CgroupLayout::kV2:
      return "v2";
  }
  return "v1";
}

absl::string_view CgroupDriverName(CgroupDriver driver) {
  return driver == CgroupDriver::kSystemd ? "systemd" : "cgroupfs";
}

nlohmann::json HostFactsToJson(const HostFacts& facts) {
  return {
      {"cgroupLayout", CgroupLayoutName(facts.cgroup_layout)},
      {"systemdRunning", facts.systemd_running},
      {"ipForward", facts.ip_forward},
      {"kernelRelease", facts.kernel_release},
      {"cgroupControllers",
       {{"hugetlb", facts.cgroups.hugetlb}, {"memorySwap", facts.cgroups.swap}}},
  };
}

}  // namespace kapal::runtime
