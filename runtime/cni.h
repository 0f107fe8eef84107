#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace kapal::runtime {

// A hostPort of a pod, handed to plugins with the portMappings capability (portmap).
struct PortMapping {
  int host_port = 0;
  int container_port = 0;
  std::string protocol = "tcp";  // tcp, udp or sctp
  std::string host_ip;
};

// Who a CNI call is for; the K8S_POD_* values go to the plugins in CNI_ARGS.
struct CniPod {
  std::string sandbox_id;
  std::string netns_path;
  std::string name;
  std::string pod_namespace;
  std::string uid;
  std::vector<PortMapping> port_mappings;
};

// The network config kapal uses: the first file (in lexical order, as libcni) of the conf dir
// with .conflist, .conf or .json, run as a chain of plugins found in the bin dirs.
class CniNetwork {
 public:
  // NOT_FOUND when the dir has no network config; INVALID_ARGUMENT when the first one is bad
  // or names a plugin that is in none of BIN_DIRS. Messages name the file.
  static absl::StatusOr<CniNetwork> Load(const std::string& conf_dir,
                                         const std::vector<std::string>& bin_dirs);

  const std::string& Name() const { return name_; }
  const std::string& File() const { return file_; }

  // Runs ADD through the chain with eth0 as the interface; returns the last plugin's result.
  absl::StatusOr<nlohmann::json> Add(const CniPod& pod) const;
  // Runs DEL through the chain in reverse, with the result of ADD as prevResult. Each plugin is
  // called even when one fails (so no half-deleted network stays), the first error returned.
  absl::Status Del(const CniPod& pod, const nlohmann::json& add_result) const;

  // The IP addresses (without prefix length) of a result, IPv4 first as kubelet expects.
  static std::vector<std::string> Addresses(const nlohmann::json& result);

 private:
  absl::StatusOr<nlohmann::json> Invoke(const std::string& command, const nlohmann::json& plugin,
                                        const CniPod& pod, const nlohmann::json& prev_result) const;

  std::string file_;
  std::string name_;
  std::string cni_version;
  std::vector<nlohmann::json> plugins_;
  std::vector<std::string> bin_dirs_;
};

}  // namespace kapal::runtime
