#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/logger.h"
#include "runtime/cgroups.h"
#include "runtime/containers.h"
#include "runtime/handlers.h"
#include "runtime/node_events.h"
#include "runtime/node_state.h"
#include "runtime/options.h"
#include "runtime/phase_timer.h"
#include "runtime/records.h"

namespace kapal::runtime {

// Pod sandboxes: their namespaces (pinned, no pause container), the shared PID namespace's
// infra process, the pod's files (hostname, hosts, resolv.conf, /dev/shm), CNI networking and
// the pod cgroup, and their records.
class Sandboxes {
 public:
  Sandboxes(const Options& options, const Cgroups& cgroups, NodeState& state, RecordStore& records,
            const Handlers& handlers, Containers& containers, PhaseMetrics& phases,
            NodeEvents& events, base::Logger& logger);

  absl::StatusOr<std::string> Run(const runtime::v1::PodSandboxConfig& config,
                                  const std::string& runtime_handler);
  // Stops the pod's containers, ends its infra process and tears its network down (CNI DEL).
  // Stopping a stopped or unknown pod is fine, as in containerd and CRI-O.
  absl::Status Stop(const std::string& id);
  // Stops it first, removes its containers, pins and files. An unknown id is fine.
  absl::Status Remove(const std::string& id);
  absl::StatusOr<Pod> Get(const std::string& id);
  // In-place pod resize (KEP-1287): the pod-level RESOURCES and OVERHEAD kubelet has applied to
  // the pod's cgroup; their set fields replace the pod's, are kept with it, and the sum is set
  // on a pod cgroup kapald made itself (Cgroups::ApplyPodLimits).
  absl::Status UpdateResources(const std::string& id,
                               const runtime::v1::LinuxContainerResources& overhead,
                               const runtime::v1::LinuxContainerResources& resources);
  std::vector<Pod> List();

  // Ends the pod's infra process, and with it every process left in the shared PID namespace.
  static void StopInfra(Pod& pod);

  // Undoes what a RunPodSandbox cut short by a crash made for pod ID before its record was
  // written: its infra process, CNI network (DEL, which releases its IP), namespace pins,
  // /dev/shm, cgroup and files.
  void CleanUpUnrecorded(const std::string& id);

  // In a pod's dir: its config, written before anything else is made for it.
  static constexpr char kIntentFile[] = "sandbox.pb";

 private:
  const Options& options_;
  const Cgroups& cgroups_;
  NodeState& state_;
  RecordStore& records_;
  const Handlers& handlers_;
  Containers& containers_;
  PhaseMetrics& phases_;
  NodeEvents& events_;
  base::Logger& logger_;
};

}  // namespace kapal::runtime
