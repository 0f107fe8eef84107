#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/cri_messages.h"
#include "nlohmann/json.hpp"

namespace kapal::runtime {

// The capabilities a container gets by default (containerd's set).
const std::vector<std::string>& DefaultCapabilities();

// The default set with the config's additions and drops ("ALL" in either); PRIVILEGED: all.
std::vector<std::string> ApplyCapabilityChanges(const runtime::v1::Capability& changes,
                                                bool privileged);

// The seccomp section of the spec for the container's security context (null: unconfined).
absl::StatusOr<nlohmann::json> SeccompFor(const runtime::v1::LinuxContainerSecurityContext& sc,
                                          const std::vector<std::string>& caps);

}  // namespace kapal::runtime
