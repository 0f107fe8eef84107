#include "runtime/host_facts.h"

#include <sys/stat.h>
#include <sys/utsname.h>

#include "absl/strings/ascii.h"
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

}  // namespace

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
  };
}

}  // namespace kapal::runtime
