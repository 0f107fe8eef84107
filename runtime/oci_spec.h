#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/cri_messages.h"
#include "nlohmann/json.hpp"
#include "runtime/host_facts.h"
#include "runtime/image_config.h"
#include "runtime/namespaces.h"
#include "runtime/security.h"
#include "runtime/userns.h"
#include "runtime/users.h"

namespace kapal::runtime {

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
  CgroupSupport cgroups;
  // The pod's user namespace (its pin) and its mappings, when it has one.
  std::string user_namespace_path;
  IdMappings user_mappings;
  // The lowest oom_score_adj the runtime can set (it cannot go below its own without
  // CAP_SYS_RESOURCE): containerd's restrict_oom_score_adj.
  int min_oom_score_adj = -1000;
  // The capabilities kapald holds: a container gets no more (privileged and "ALL" mean these).
  std::vector<std::string> held_capabilities = KnownCapabilities();
};

// The cgroup resources of the OCI spec (linux.resources, without devices) for RESOURCES; what
// `runc update` takes too. Limits of controllers the host lacks (SUPPORT) are left out.
nlohmann::json CgroupResources(const runtime::v1::LinuxContainerResources& resources,
                               const CgroupSupport& support);

// The OCI runtime spec (config.json) of a container. Mount sources that do not exist are
// created as directories, as kubelet expects.
absl::StatusOr<nlohmann::json> BuildContainerSpec(const SpecInputs& inputs);

}  // namespace kapal::runtime
