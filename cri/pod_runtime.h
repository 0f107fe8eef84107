#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "base/child_process.h"
#include "base/logger.h"
#include "base/unique_fd.h"
#include "cri/config.h"
#include "cri/host_facts.h"
#include "cri/namespaces.h"
#include "cri/oci_spec.h"
#include "cri/proto/cri_api.h"
#include "images/image_store.h"
#include "nlohmann/json.hpp"
#include "snapshotter/snapshotter.h"
#include "store/store.h"

namespace kapal::cri {

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
};

struct ExecResult {
  std::string output;
  std::string errors;
  int exit_code = 0;
};

// Pods and containers of the node: their lifecycle through namespaces, CNI, kapal-shim and the
// OCI runtime, and their records in the store. Every change is in the store before it returns.
// Errors are statuses with the gRPC code the CRI caller expects (NOT_FOUND, ALREADY_EXISTS, ...).
class PodRuntime {
 public:
  PodRuntime(const Config& config, const HostFacts& host, store::Store& store,
             images::ImageStore& images, snapshotter::Snapshotter& snapshots, base::Logger& logger);
  ~PodRuntime();

  // Loads the records, and brings them up to date with what happened while kapald was down
  // (exits of containers, a reboot that took namespaces away). Removes leftovers of a crash in
  // the middle of creating something.
  absl::Status Recover();

  // Watches STATE/exits, where each shim notes its container's exit, and records exits as they
  // happen (not only when a client asks). Stopped by the destructor.
  absl::Status StartExitWatcher();

  absl::StatusOr<std::string> RunPod(const runtime::v1::PodSandboxConfig& config,
                                     const std::string& runtime_handler);
  absl::Status StopPod(const std::string& id);
  absl::Status RemovePod(const std::string& id);
  // By id or a unique id prefix.
  absl::StatusOr<Pod> GetPod(const std::string& id);
  std::vector<Pod> ListPods();

  absl::StatusOr<std::string> CreateContainer(const std::string& pod_id,
                                              const runtime::v1::ContainerConfig& config);
  absl::Status StartContainer(const std::string& id);
  absl::Status StopContainer(const std::string& id, std::chrono::seconds timeout);
  absl::Status RemoveContainer(const std::string& id);
  absl::StatusOr<Container> GetContainer(const std::string& id);
  std::vector<Container> ListContainers();
  absl::StatusOr<ExecResult> ExecSync(const std::string& id, const std::vector<std::string>& cmd,
                                      std::chrono::seconds timeout);
  absl::Status ReopenContainerLog(const std::string& id);

  // Facts for Status/info: the runtime binaries and limits that apply on this host.
  nlohmann::json Describe() const;

 private:
  struct Handler;
  absl::StatusOr<const Handler*> HandlerFor(const std::string& name) const;
  // The handler of the container's pod (the default one when the pod is gone).
  absl::StatusOr<const Handler*> HandlerOfLocked(const Container& c) const;
  // Resolves an id or prefix and brings the container's state up to date.
  absl::StatusOr<Container*> FindContainerLocked(const std::string& id_or_prefix);
  absl::StatusOr<std::string> ResolvePodId(const std::string& id_or_prefix);
  absl::StatusOr<std::string> ResolveContainerId(const std::string& id_or_prefix);
  // Reads the shim's exit record (or notices a dead shim) and records the exit.
  void RefreshLocked(Container& container);
  absl::Status SavePodRecord(const Pod& pod);
  absl::Status SaveContainerRecord(const Container& container);
  absl::Status StopContainerUnlocked(const std::string& id, std::chrono::seconds timeout);
  absl::Status CleanUpContainerLocked(const Container& container);
  std::string CgroupsPath(const Pod& pod, const std::string& container_id) const;
  std::string OomFile(const std::string& cgroups_path) const;
  void RemovePodCgroup(const Pod& pod) const;
  // Ends the pod's infra process, and with it every process left in the shared PID namespace.
  void StopInfra(Pod& pod);

  const Config& config_;
  const HostFacts& host_;
  store::Store& store_;
  images::ImageStore& images_;
  snapshotter::Snapshotter& snapshots_;
  base::Logger& logger_;
  std::string shim_binary_;
  int min_oom_score_adj_ = -1000;
  std::map<std::string, std::unique_ptr<Handler>> handlers_;

  std::mutex mutex_;
  std::map<std::string, Pod> pods_;
  std::map<std::string, Container> containers_;
  // Pod and container names taken by a RunPodSandbox or CreateContainer still in progress.
  std::set<std::string> reserved_names_;

  std::string exit_dir_;
  base::UniqueFd exit_watch_;  // inotify on exit_dir_
  base::UniqueFd stop_watch_;  // eventfd that ends the watcher thread
  std::thread exit_watcher_;
  void WatchExits();
  void RecordExitsNoted();
};

// A CRI Signal name or number from an image's StopSignal ("SIGTERM", "TERM", "15"); 0 if unknown.
int ParseSignal(const std::string& text);

}  // namespace kapal::cri
