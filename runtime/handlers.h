#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"
#include "runtime/host_facts.h"
#include "runtime/oci_runtime.h"
#include "runtime/options.h"

namespace kapal::runtime {

// What a handler can do beyond the basics (CRI's RuntimeHandlerFeatures).
struct HandlerFeatures {
  // Mount.recursive_read_only: the runtime knows "rro" (it calls mount_setattr with
  // AT_RECURSIVE, which the kernel has from 5.12 on).
  bool recursive_read_only = false;
  // Pods in user namespaces (KEP-127): kapald makes the idmapped mounts (userns.h), so this
  // needs the kernel's support for them on the snapshots' filesystem, not the runtime's.
  bool user_namespaces = false;
};

// A RuntimeClass handler: a name pods ask for and the OCI runtime it runs.
struct Handler {
  std::string name;
  OciRuntime runtime;
  HandlerFeatures features;
};

// The handlers of this node, the kapal-shim they start, and the limits of this host that every
// container spec must respect.
class Handlers {
 public:
  Handlers(const Options& options, const HostFacts& host);

  // NAME "" is the default handler. NOT_FOUND names the handlers there are.
  absl::StatusOr<const Handler*> Find(const std::string& name) const;
  std::vector<std::string> Names() const;
  std::vector<const Handler*> All() const;

  const std::string& ShimBinary() const { return shim_binary_; }
  // The lowest oom_score_adj the runtime may set: without CAP_SYS_RESOURCE it cannot go below
  // kapald's own (containerd's restrict_oom_score_adj).
  int MinOomScoreAdj() const { return min_oom_score_adj_; }
  // The capabilities kapald holds, which bound every container's.
  const std::vector<std::string>& HeldCapabilities() const { return held_capabilities_; }
  // For Status verbose and `kapalctl info`.
  nlohmann::json Describe() const;

 private:
  std::string default_name_;
  std::string shim_binary_;
  int min_oom_score_adj_ = -1000;
  std::vector<std::string> held_capabilities_;
  CgroupLayout cgroup_layout_;
  std::map<std::string, std::unique_ptr<Handler>> handlers_;
};

}  // namespace kapal::runtime
