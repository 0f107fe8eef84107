#pragma once

// The node core: what every front door (the CRI gRPC server, the streaming server, the Docker
// API, kapalctl through them) calls to run pods and containers and to keep images. It owns the
// rules (defaults, name conflicts, security, cleanup), so each door only checks what belongs to
// its own API and translates. It speaks CRI messages and absl::Status; it must not know gRPC,
// HTTP or any door's wire format. It builds on images/, snapshotter/, store/, metrics/ and
// base/, and starts kapal-shim as a program (never links it).

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/logger.h"
#include "base/unique_fd.h"
#include "images/image_store.h"
#include "metrics/metrics.h"
#include "nlohmann/json.hpp"
#include "runtime/cgroups.h"
#include "runtime/container_files.h"
#include "runtime/containers.h"
#include "runtime/handlers.h"
#include "runtime/host_facts.h"
#include "runtime/images.h"
#include "runtime/journal.h"
#include "runtime/networks.h"
#include "runtime/node_events.h"
#include "runtime/options.h"
#include "runtime/readiness.h"
#include "runtime/records.h"
#include "runtime/volumes.h"
#include "snapshotter/snapshotter.h"
#include "store/store.h"

namespace kapal::runtime {

class Runtime {
 public:
  struct Parts;
  // Recovers the pods and containers of an earlier run and starts watching exits. METRICS gets
  // the runtime's own (kapal_runtime_phase_seconds).
  static absl::StatusOr<std::unique_ptr<Runtime>> Start(const Options& options,
                                                        const HostFacts& host, store::Store& store,
                                                        images::ImageStore& image_records,
                                                        snapshotter::Snapshotter& snapshots,
                                                        Images& images, metrics::Registry& metrics,
                                                        base::Logger& logger);
  ~Runtime();

  // Pod sandboxes. Ids may be unique prefixes.
  absl::StatusOr<std::string> RunPod(const runtime::v1::PodSandboxConfig& config,
                                     const std::string& runtime_handler);
  absl::Status StopPod(const std::string& id);
  absl::Status RemovePod(const std::string& id);
  absl::StatusOr<Pod> GetPod(const std::string& id);
  // In-place pod resize (see Sandboxes::UpdateResources).
  absl::Status UpdatePodResources(const std::string& id,
                                  const runtime::v1::LinuxContainerResources& overhead,
                                  const runtime::v1::LinuxContainerResources& resources);
  std::vector<Pod> ListPods();

  // Containers.
  absl::StatusOr<std::string> CreateContainer(const std::string& pod_id,
                                              const runtime::v1::ContainerConfig& config);
  absl::Status StartContainer(const std::string& id);
  absl::Status StopContainer(const std::string& id, std::chrono::seconds timeout);
  absl::Status RemoveContainer(const std::string& id);
  absl::StatusOr<Container> GetContainer(const std::string& id);
  std::vector<Container> ListContainers();
  // The containers of the pod with this full id, newest first (see SortNewestFirst).
  std::vector<Container> ListContainersOf(const std::string& pod_id);
  // For the Docker API (CRI has none of these): a signal to a running container, a wait for its
  // exit (see Containers::WaitForExit), an exited container made created again.
  absl::Status SignalContainer(const std::string& id, int signal);
  absl::StatusOr<Container> WaitForExit(const std::string& id, std::chrono::milliseconds timeout);
  absl::Status RecreateContainer(const std::string& id);
  // Docker's pause/unpause (the cgroup freezer), whether a container is paused, and the host
  // pids of its processes (top).
  absl::Status PauseContainer(const std::string& id);
  absl::Status ResumeContainer(const std::string& id);
  bool ContainerPaused(const std::string& id);
  absl::StatusOr<std::vector<int>> ContainerProcesses(const std::string& id);
  // A door's own facts about a container, kept on its record (see Containers::SetAnnotations).
  absl::Status AnnotateContainer(const std::string& id,
                                 const std::map<std::string, std::string>& values);
  // Docker's cp and export: the container's files where it sees them (see ContainerFiles).
  absl::StatusOr<ContainerFiles> FilesOf(const std::string& id);
  absl::StatusOr<ExecResult> ExecSync(const std::string& id, const std::vector<std::string>& cmd,
                                      std::chrono::seconds timeout);
  // With Docker's exec options (user, environment, working dir, privileged); stdio and terminal
  // are ignored: the output comes back whole.
  absl::StatusOr<ExecResult> ExecSync(const std::string& id, const ExecOptions& options,
                                      std::chrono::seconds timeout);
  absl::Status ReopenContainerLog(const std::string& id);
  // Interactive sessions (the streaming server): a process whose stdio the caller pumps, a
  // connection to the container's attach socket, its terminal's size.
  absl::StatusOr<std::unique_ptr<ExecProcess>> StartExec(const std::string& id,
                                                         const ExecOptions& options);
  absl::StatusOr<AttachedContainer> Attach(const std::string& id, bool before_start = false);
  absl::Status ResizeContainerTerminal(const std::string& id, uint16_t columns, uint16_t rows);
  // A TCP connection to PORT on the pod's loopback, made in the pod's network namespace (the
  // host's for a host-network pod). The pod must be ready; the id may be a unique prefix.
  absl::StatusOr<base::UniqueFd> DialPod(const std::string& pod_id, uint16_t port);
  // CRI's CheckpointContainer: a running container's state into the archive LOCATION (an
  // absolute path). NOT_FOUND, FAILED_PRECONDITION (not running; CRIU missing or unable to work
  // on this kernel, with its reason); UNIMPLEMENTED where CRIU works, since kapald does not
  // write checkpoint archives yet.
  absl::Status CheckpointContainer(const std::string& id, const std::string& location);
  // Applies the set fields of RESOURCES to a created or running container and keeps them.
  absl::Status UpdateContainerResources(const std::string& id,
                                        const runtime::v1::LinuxContainerResources& resources);

  // Resource usage, cheap enough for kubelet's polls. Lists cover created and running
  // containers; pods carry their containers' stats and their network counters.
  absl::StatusOr<runtime::v1::ContainerStats> ContainerStats(const std::string& id);
  // Its cgroup's counters, for docker stats (block I/O and pids besides CPU and memory).
  absl::StatusOr<CgroupSample> ContainerCgroupSample(const std::string& id);
  std::vector<runtime::v1::ContainerStats> ListContainerStats(
      const runtime::v1::ContainerStatsFilter& filter);
  absl::StatusOr<runtime::v1::PodSandboxStats> PodSandboxStats(const std::string& id);
  std::vector<runtime::v1::PodSandboxStats> ListPodSandboxStats(
      const runtime::v1::PodSandboxStatsFilter& filter);
  // cAdvisor-style metrics of every pod and container, and their descriptors
  // (sandbox_metrics.h).
  std::vector<runtime::v1::MetricDescriptor> MetricDescriptors() const;
  std::vector<runtime::v1::PodSandboxMetrics> ListPodSandboxMetrics();

  Images& images();

  // Named volumes (node objects: every door shows the same ones).
  Volumes& volumes();
  // The containers (ids) that mount volume NAME's directory.
  std::vector<std::string> VolumeUsers(const std::string& name);
  // Removes NAME unless a container mounts it (FAILED_PRECONDITION naming them).
  absl::Status RemoveVolume(const std::string& name);
  // Pod networks (the CNI configs; node objects too).
  Networks& networks();
  // The pods attached to network NAME (host-network pods are on none).
  std::vector<Pod> NetworkUsers(const std::string& name);
  // Removes a network kapal created unless a pod is on it (FAILED_PRECONDITION naming one).
  absl::Status RemoveNetwork(const std::string& name);

  // The node's recent events of every kind (containers, pods, images; the Docker door adds its
  // volumes and networks), for `docker events`.
  Journal& journal();
  // The node's lifecycle events, for as long as the subscription is held (see NodeEvents).
  std::unique_ptr<NodeEvents::Subscription> SubscribeEvents();
  // Ends every event subscription now (kapald stopping), so no stream holds the doors open.
  void EndEventStreams();

  // The node.
  Condition RuntimeReady() const;
  Condition NetworkReady() const;
  std::vector<std::string> HandlerNames() const;
  // What handler NAME ("" the default) supports; all false for an unknown one.
  HandlerFeatures FeaturesOf(const std::string& name) const;
  CgroupDriver cgroup_driver() const;
  const HostFacts& host() const;
  // The pod CIDR kubelet gave (UpdateRuntimeConfig), kept in the store; "" until then. An empty
  // one does not erase a known one (kubelet sends "" until the node has one).
  absl::Status SetPodCidr(const std::string& cidrs);
  absl::StatusOr<std::string> PodCidr();
  // For Status verbose and `kapalctl info`: the database, under "pods" the handlers and the
  // limits of this host, under "unsyncedLayers" what Images::UnsyncedLayers counts.
  nlohmann::json Describe();

 private:
  explicit Runtime(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace kapal::runtime
