#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/cri_messages.h"

namespace kapal::runtime {

// What a container takes from its image's config ("config" of the OCI image config).
struct ImageRuntimeConfig {
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::vector<std::string> env;
  std::string working_dir;
  std::string user;
  std::string stop_signal;
  static ImageRuntimeConfig Parse(const std::string& image_config_json);
};

// The process's command line by Kubernetes' rules: command replaces the image's Entrypoint
// (and then its Cmd is dropped); args replace the image's Cmd. INVALID_ARGUMENT when empty.
absl::StatusOr<std::vector<std::string>> ContainerArgs(const runtime::v1::ContainerConfig& config,
                                                       const ImageRuntimeConfig& image);

// Image env first, the container's envs replacing equal keys; PATH added when neither sets it.
std::vector<std::string> ContainerEnv(const runtime::v1::ContainerConfig& config,
                                      const ImageRuntimeConfig& image);

}  // namespace kapal::runtime
