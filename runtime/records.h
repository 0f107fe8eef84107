#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "api/cri_messages.h"
#include "nlohmann/json.hpp"
#include "runtime/namespaces.h"
#include "runtime/users.h"
#include "store/store.h"

namespace kapal::runtime {

// A pod sandbox as kapald keeps it (table `pods`, files under STATE/pods/ID).
struct Pod {
  std::string id;
  runtime::v1::PodSandboxConfig config;
  std::string runtime_handler;
  bool ready = false;
  std::vector<std::string> ips;
  nlohmann::json cni_result;
  int64_t created_at = 0;  // ns since the epoch
  std::string dir;
  PodNamespaces own;
  int infra_pid = 0;  // init of the shared PID namespace (own.pid), 0 when none
};

// A container (table `containers`, bundle under STATE/containers/ID).
struct Container {
  std::string id;
  std::string pod_id;
  runtime::v1::ContainerConfig config;
  std::string image_id;
  std::string image_ref;
  runtime::v1::ContainerState state = runtime::v1::CONTAINER_CREATED;
  std::string snapshot_key;
  std::string log_path;
  int shim_pid = 0;
  int exit_code = 0;
  std::string reason;
  std::string message;
  int stop_signal = 15;
  int64_t created_at = 0;
  int64_t started_at = 0;
  int64_t finished_at = 0;
  std::string bundle;
  // The user the process runs as (from the spec), for ContainerStatus.user.
  std::optional<ProcessUser> user;
  // Frozen by Docker's pause (not stored: recovery reads it back from the cgroup freezer).
  bool paused = false;
  // Between Start's check and its report (not stored): an exit seen meanwhile waits for Start,
  // so that every subscriber hears STARTED before STOPPED even for a process that ends at once.
  bool starting = false;
};

// A pod's containers as kubelet reads them from PodSandboxStatus and from events: newest first
// (it takes the first status of a name as that container's latest, and does not sort them).
void SortNewestFirst(std::vector<Container>& containers);

// Nanoseconds since the epoch, as CRI reports times.
int64_t NowNanos();
// A new pod or container id: 64 hex digits, as containerd makes them.
std::string NewId();
std::string ContainerStateName(runtime::v1::ContainerState state);
// The state as one lower-case word: created, running, exited, unknown (metrics, Docker's API).
std::string ContainerStateWord(runtime::v1::ContainerState state);
// The namespaces a pod config asks to be the pod's own (NODE means the host's).
PodNamespaces OwnNamespaces(const runtime::v1::PodSandboxConfig& config);

// Pods and containers in the store: written before an rpc answers, read back at start.
class RecordStore {
 public:
  RecordStore(store::Store& store, std::string state_dir)
      : store_(store), state_dir_(std::move(state_dir)) {}

  absl::Status SavePod(const Pod& pod);
  absl::Status DeletePod(const std::string& id);
  absl::Status SaveContainer(const Container& container);
  absl::Status DeleteContainer(const std::string& id);
  // Every record, with the paths under the state dir filled in.
  absl::Status LoadAll(std::vector<Pod>& pods, std::vector<Container>& containers);

  std::string PodDir(const std::string& id) const;
  std::string ContainerBundle(const std::string& id) const;

 private:
  store::Store& store_;
  std::string state_dir_;
};

}  // namespace kapal::runtime
