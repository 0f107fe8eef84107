#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/logger.h"
#include "base/unique_fd.h"
#include "images/image_store.h"
#include "runtime/cgroups.h"
#include "runtime/container_mounts.h"
#include "runtime/exec_process.h"
#include "runtime/exit_monitor.h"
#include "runtime/handlers.h"
#include "runtime/host_facts.h"
#include "runtime/node_events.h"
#include "runtime/node_metrics.h"
#include "runtime/node_state.h"
#include "runtime/options.h"
#include "runtime/phase_timer.h"
#include "runtime/records.h"
#include "snapshotter/snapshotter.h"

namespace kapal::runtime {

// The writable snapshot of container ID is named kContainerSnapshotPrefix + ID.
inline constexpr char kContainerSnapshotPrefix[] = "container-";

// A connection to a container's attach socket (see shim/exit_file.h for what flows on it).
struct AttachedContainer {
  base::UniqueFd socket;
  std::string id;
  bool tty = false;
  bool stdin = false;
};

struct ExecResult {
  std::string output;
  std::string errors;
  int exit_code = 0;
};

// Containers of the node's pods: root filesystem (snapshot and mount), OCI spec, kapal-shim and
// the OCI runtime, and their records. Every change is in the store before it returns.
class Containers {
 public:
  Containers(const Options& options, const Cgroups& cgroups, NodeState& state, RecordStore& records,
             const Handlers& handlers, ExitMonitor& exits, images::ImageStore& images,
             snapshotter::Snapshotter& snapshots, PhaseMetrics& phases, NodeMetrics& metrics,
             NodeEvents& events, base::Logger& logger);

  absl::StatusOr<std::string> Create(const std::string& pod_id,
                                     const runtime::v1::ContainerConfig& config);
  absl::Status Start(const std::string& id);
  // The stop signal, then SIGKILL after TIMEOUT (at once for 0). Stopping a stopped or an unknown
  // one is fine (idempotent).
  absl::Status Stop(const std::string& id, std::chrono::seconds timeout);
  // Stops it first; an unknown id is fine (idempotent).
  absl::Status Remove(const std::string& id);
  absl::StatusOr<Container> Get(const std::string& id);
  // Every container, or only POD_ID's.
  std::vector<Container> List(const std::string& pod_id = "");
  // SIGNAL to a running container's process (FAILED_PRECONDITION when it is not running).
  absl::Status Signal(const std::string& id, int signal);
  // Blocks until the container has exited (returned) or is gone (NOT_FOUND), for at most
  // TIMEOUT (DEADLINE_EXCEEDED); a created one is waited for through its run.
  absl::StatusOr<Container> WaitForExit(const std::string& id, std::chrono::milliseconds timeout);
  // Makes an exited container created again: a new shim and runtime process on the same bundle,
  // root filesystem and log. Docker's start of a stopped container needs it; CRI never asks.
  absl::Status Recreate(const std::string& id);

  // container_control.cc: Docker's pause, unpause and top (CRI has none of them).
  absl::Status Pause(const std::string& id);
  absl::Status Resume(const std::string& id);
  // Whether a running container is paused.
  bool Paused(const std::string& id);
  absl::StatusOr<std::vector<int>> Processes(const std::string& id);

  // container_exec.cc
  absl::StatusOr<ExecResult> ExecSync(const std::string& id, const ExecOptions& options,
                                      std::chrono::seconds timeout);
  absl::Status ReopenLog(const std::string& id);
  // For the streaming server: a process with its stdio in the caller's hands, the container's
  // attach socket (its output and stdin, through the shim) and the size of its terminal.
  absl::StatusOr<std::unique_ptr<ExecProcess>> StartExec(const std::string& id,
                                                         const ExecOptions& options);
  // BEFORE_START also takes a created container (its shim listens from create on), so that
  // nothing it prints at start is missed (Docker's run attaches, then starts).
  absl::StatusOr<AttachedContainer> Attach(const std::string& id, bool before_start = false);
  absl::Status ResizeTerminal(const std::string& id, uint16_t columns, uint16_t rows);
  absl::Status UpdateResources(const std::string& id,
                               const runtime::v1::LinuxContainerResources& resources);
  // Sets (an empty value removes) annotations on the container's record: what a door keeps
  // about it (Docker's name, restart count, whether it was stopped by hand). The OCI spec of a
  // created container is not changed.
  absl::Status SetAnnotations(const std::string& id,
                              const std::map<std::string, std::string>& values);

  // Removes what a container has on the host: the runtime's state, the rootfs mount, the
  // snapshot, the bundle. The caller holds the state's mutex.
  absl::Status CleanUpLocked(const Container& container);
  // Whether the container's cgroup is frozen (a Docker pause that outlived kapald), read from the
  // freezer; for recovery.
  bool FrozenLocked(const Container& container) const;

 private:
  // CleanUpLocked's work, without the lock: HANDLER (null when the pod's handler is unknown)
  // deletes the runtime's state.
  absl::Status CleanUp(const Container& container, const Handler* handler);
  // What kapal-shim is started with for container C of POD.
  ShimLaunch LaunchOf(const Container& c, const Pod& pod) const;
  // The handler of the container's pod (the default one when the pod is gone).
  absl::StatusOr<const Handler*> HandlerOfLocked(const Container& container) const;
  struct PreparedExec;
  // The container (running), its runtime and a process.json for CMD in a scratch dir.
  absl::StatusOr<PreparedExec> PrepareExec(const std::string& id_or_prefix,
                                           const ExecOptions& options);
  void MarkPaused(const std::string& id, bool paused);
  // A running container's full id and handler, for a runtime command on it.
  absl::StatusOr<std::pair<std::string, const Handler*>> RunningHandler(
      const std::string& id_or_prefix);
  // The bundle of a running container.
  absl::StatusOr<Container> RunningContainer(const std::string& id_or_prefix, const char* purpose,
                                             bool or_created = false);
  // Resolves an id or prefix and brings the container's state up to date.
  absl::StatusOr<Container*> FindLocked(const std::string& id_or_prefix);

  const Options& options_;
  const Cgroups& cgroups_;
  NodeState& state_;
  RecordStore& records_;
  const Handlers& handlers_;
  ExitMonitor& exits_;
  images::ImageStore& images_;
  snapshotter::Snapshotter& snapshots_;
  PhaseMetrics& phases_;
  NodeMetrics& metrics_;
  NodeEvents& events_;
  base::Logger& logger_;
  BundleMounts bundle_mounts_{images_, snapshots_};
};

}  // namespace kapal::runtime
