#pragma once

#include <string>

#include "cri/config.h"

namespace kapal::cri {

// One CRI RuntimeCondition: when not ready, REASON is a CamelCase word kubelet shows and MESSAGE
// tells the operator what to do.
struct Condition {
  bool ready = false;
  std::string reason;
  std::string message;
};

// RuntimeReady: the default handler's OCI runtime binary can be executed.
Condition CheckRuntimeReady(const Config& config);

// NetworkReady: the first CNI network config in conf_dir parses and every plugin it names is
// in one of bin_dirs. Without one, pods that need a network cannot start, as containerd reports.
Condition CheckNetworkReady(const Config& config);

}  // namespace kapal::cri
