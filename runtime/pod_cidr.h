#pragma once

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace kapal::runtime {

// Checks a pod CIDR list as kubelet sends it: "" (none yet) or comma-separated CIDRs, at most one
// per IP family ("10.88.0.0/16,fd00::/64").
absl::Status ValidatePodCidrs(absl::string_view cidrs);

}  // namespace kapal::runtime
