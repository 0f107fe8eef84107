#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/cri_messages.h"

namespace kapal::runtime {

struct ProcessUser {
  uint32_t uid = 0;
  uint32_t gid = 0;
  // The process's groups (setgroups): the primary one among them, sorted.
  std::vector<uint32_t> additional_gids;
};

// Resolves the user to run as: RunAsUser / RunAsUsername / RunAsGroup over the image's User,
// names looked up in ROOTFS's /etc/passwd and /etc/group (read without leaving ROOTFS); the
// primary group, the supplemental groups and (unless the policy is Strict) the groups listing
// the user become additional gids. A name that is not in the image is INVALID_ARGUMENT.
absl::StatusOr<ProcessUser> ResolveUser(const std::string& rootfs,
                                        const runtime::v1::ContainerConfig& config,
                                        const std::string& image_user);

}  // namespace kapal::runtime
