#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cri/namespaces.h"
#include "cri/proto/cri_api.h"
#include "nlohmann/json.hpp"

namespace kapal::cri {

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

struct ProcessUser {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids;
};

// Resolves the user to run as: RunAsUser / RunAsUsername / RunAsGroup over the image's User,
// names looked up in ROOTFS's /etc/passwd and /etc/group (read without leaving ROOTFS); groups
// listing the user and the supplemental groups become additional gids. A name that is not in
// the image is INVALID_ARGUMENT.
absl::StatusOr<ProcessUser> ResolveUser(const std::string& rootfs,
                                        const runtime::v1::ContainerConfig& config,
                                        const std::string& image_user);

// Rejects a path given by a client for the host or the container: it must be absolute and have
// no ".." component (WHAT names it in the message).
absl::Status CheckClientPath(const std::string& path, const std::string& what);

// Where a pod keeps what its containers share (see PodSandboxes).
struct PodFiles {
  std::string dir;    // hostname, hosts, resolv.conf, shm/, and the namespace pins net/ipc/uts
  PodNamespaces own;  // which namespaces the pod has of its own (the others are the host's)
};

struct SpecInputs {
  std::string container_id;
  const runtime::v1::ContainerConfig* container = nullptr;
  const runtime::v1::PodSandboxConfig* pod = nullptr;
  ImageRuntimeConfig image;
  ProcessUser user;
  std::string rootfs;
  std::string hostname;
  PodFiles pod_files;
  std::string cgroups_path;
  // The PID namespace to join (the pod's shared one); empty: the container's own, or the host's
  // when the config says NODE.
  std::string pid_namespace_path;
  bool cgroup_v2 = false;
  // The lowest oom_score_adj the runtime can set (it cannot go below its own without
  // CAP_SYS_RESOURCE): containerd's restrict_oom_score_adj.
  int min_oom_score_adj = -1000;
};

// The OCI runtime spec (config.json) of a container. Mount sources that do not exist are
// created as directories, as kubelet expects.
absl::StatusOr<nlohmann::json> BuildContainerSpec(const SpecInputs& inputs);

// The capabilities a container gets by default (containerd's set).
const std::vector<std::string>& DefaultCapabilities();

}  // namespace kapal::cri
