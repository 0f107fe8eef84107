#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "runtime/options.h"

namespace kapal::runtime {

// One CRI RuntimeCondition: when not ready, REASON is a CamelCase word kubelet shows and MESSAGE
// tells the operator what to do.
struct Condition {
  bool ready = false;
  std::string reason;
  std::string message;
};

// RuntimeReady: the default handler's OCI runtime binary can be executed.
Condition CheckRuntimeReady(const Options& options);

// NetworkReady: the first CNI network config in conf_dir parses and every plugin it names is
// in one of bin_dirs. Without one, pods that need a network cannot start, as containerd reports.
Condition CheckNetworkReady(const Options& options);

}  // namespace kapal::runtime
