#pragma once

#include <map>
#include <string>
#include <vector>

namespace kapal::runtime {

enum class CgroupDriverSetting { kAuto, kCgroupfs, kSystemd };

// An OCI runtime that pods can ask for by RuntimeClass handler name.
struct RuntimeHandler {
  // Absolute path, or a name looked up in PATH when the runtime is used.
  std::string binary;
  bool operator==(const RuntimeHandler&) const = default;
};

// What the node core needs to know of the configuration. The daemon's Config (kapal.toml) is
// one of these plus what only the daemon uses (sockets, log level, image settings); every
// field has a default.
struct Options {
  std::string root_dir = "/var/lib/kapal";
  std::string state_dir = "/run/kapal";
  CgroupDriverSetting cgroup_driver = CgroupDriverSetting::kAuto;
  std::string default_runtime = "runc";
  // kapal-shim; empty means the one next to the running binary (kapald).
  std::string shim_binary;
  std::map<std::string, RuntimeHandler> runtimes = {{"runc", {"runc"}}, {"crun", {"crun"}}};
  std::string cni_conf_dir = "/etc/cni/net.d";
  std::vector<std::string> cni_bin_dirs = {"/usr/lib/cni", "/opt/cni/bin"};
  // Where CDI device specs are read, lowest priority first (a device defined again in a later
  // directory wins), as containerd's cdi_spec_dirs.
  std::vector<std::string> cdi_spec_dirs = {"/etc/cdi", "/var/run/cdi"};

  bool operator==(const Options&) const = default;
};

}  // namespace kapal::runtime
