#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/cri_messages.h"
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

// A pod annotation naming the network config (its "name") the pod is attached to, instead of
// the conf dir's first; "none" gives the pod a network namespace with loopback only (Docker's
// --network NAME and --network none).
inline constexpr char kNetworkAnnotation[] = "io.kapal.network";
inline constexpr char kNoNetwork[] = "none";
// The network a pod asked for: "" for the default, kNoNetwork or a config's name.
std::string NetworkNameOf(const runtime::v1::PodSandboxConfig& config);

// A network config file of the conf dir and what it says, for listings.
struct CniConfigFile {
  std::string path;
  std::string name;
  nlohmann::json config;
};

// The network config kapal uses: the first file (in lexical order, as libcni) of the conf dir
// with .conflist, .conf or .json, run as a chain of plugins found in the bin dirs.
class CniNetwork {
 public:
  // NOT_FOUND when the dir has no network config; INVALID_ARGUMENT when the first one is bad
  // or names a plugin that is in none of BIN_DIRS. Messages name the file.
  // With NAME, the file whose "name" it is (NOT_FOUND when none).
  static absl::StatusOr<CniNetwork> Load(const std::string& conf_dir,
                                         const std::vector<std::string>& bin_dirs,
                                         const std::string& name = "");
  // Every readable config of CONF_DIR in lexical order (the first is the default).
  static std::vector<CniConfigFile> ListConfigs(const std::string& conf_dir);

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
