#pragma once

// Pod networks as node objects every door shows (Docker's `network`): the CNI configs of the
// conf dir, the first being the default one. Create writes a bridge + host-local + portmap
// config of its own on a subnet no other config uses; only those are removed again.

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "base/logger.h"
#include "nlohmann/json.hpp"
#include "runtime/journal.h"

namespace kapal::runtime {

struct Network {
  std::string name;  // the CNI config's "name"
  std::string path;  // its file
  nlohmann::json config;
  bool is_default = false;    // the conf dir's first: pods that name no network are on it
  bool created_here = false;  // written by Networks::Create, so removable
  std::string driver;         // the first plugin's type (bridge, ptp, ...)
  std::vector<std::pair<std::string, std::string>> subnets;  // IPv4 (subnet, gateway) of its IPAM
  std::string bridge;                                        // the bridge plugin's device, if any
  nlohmann::json labels = nlohmann::json::object();
};

struct NetworkRequest {
  std::string name;
  std::string subnet;   // an IPv4 CIDR; empty: the first free /24 of 10.89.0.0/16
  std::string gateway;  // empty: the subnet's first address
  nlohmann::json labels = nlohmann::json::object();
};

class Networks {
 public:
  // JOURNAL (may be null) is told of creations and removals.
  Networks(std::string conf_dir, Journal* journal, base::Logger& logger)
      : conf_dir_(std::move(conf_dir)), journal_(journal), logger_(logger) {}

  std::vector<Network> List() const;
  // NOT_FOUND when no config has that name.
  absl::StatusOr<Network> Get(const std::string& name) const;
  // INVALID_ARGUMENT for a bad name or subnet, ALREADY_EXISTS for a taken name,
  // FAILED_PRECONDITION ("Pool overlaps ...") for a subnet another config uses,
  // RESOURCE_EXHAUSTED when no default subnet is free.
  absl::StatusOr<Network> Create(const NetworkRequest& request);
  // Removes a network Create made: its config, bridge and IPAM state. PERMISSION_DENIED for the
  // default and for configs written by others. The caller checks that no pod is on it
  // (Runtime::RemoveNetwork does).
  absl::Status Remove(const std::string& name);

 private:
  void Tell(const std::string& action, const std::string& name);

  std::string conf_dir_;
  Journal* journal_;
  base::Logger& logger_;
};

}  // namespace kapal::runtime
