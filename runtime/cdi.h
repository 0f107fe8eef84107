#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace kapal::runtime {

// CDI, the Container Device Interface (KEP-4009): device specs (JSON or YAML files, each a
// `kind` such as vendor.com/gpu with named devices and the edits each makes to a container)
// found in SPEC_DIRS, lowest priority first. A device is asked for by its fully qualified name,
// vendor.com/gpu=dev0.
//
// Applies the edits of the devices NAMES (and of their specs' own containerEdits, once per spec)
// to OCI_SPEC: device nodes (with a device cgroup rule each; type and numbers read from the host
// node when the spec leaves them out), mounts, environment variables (replacing one of the same
// name), hooks, additional groups. INVALID_ARGUMENT naming the device for a malformed or unknown
// name; a spec file that cannot be read or parsed is named in the message of the device it
// might have defined. OCI_SPEC is unchanged on any error.
absl::Status ApplyCdiDevices(const std::vector<std::string>& names,
                             const std::vector<std::string>& spec_dirs, nlohmann::json& oci_spec);

}  // namespace kapal::runtime
