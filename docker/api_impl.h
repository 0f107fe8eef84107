#pragma once

// The Docker API's parts, shared by its endpoint files (system.cc, images.cc, containers.cc,
// exec.cc, volumes_networks.cc). Private to docker/.

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "base/thread_set.h"
#include "docker/api.h"
#include "docker/http_server.h"
#include "nlohmann/json.hpp"
#include "runtime/runtime.h"

namespace kapal::docker {

// A Docker container as the core has it: the container, its pod, what Docker was asked.
struct DockerContainer {
  runtime::Container container;
  std::optional<runtime::Pod> pod;
  std::string name;
  nlohmann::json create;  // the create body (Config with HostConfig)
};

// Docker's restart policy (HostConfig.RestartPolicy).
struct RestartPolicy {
  enum Kind { kNo, kAlways, kUnlessStopped, kOnFailure } kind = kNo;
  int maximum_retries = 0;  // on-failure's limit; 0 is none
};
RestartPolicy RestartPolicyOf(const nlohmann::json& create);

// A pending restart: Docker's back-off starts at 100 ms, doubles per restart up to a minute,
// and starts over after a run of 10 s or more.
struct RestartPlan {
  std::chrono::milliseconds backoff{0};
  std::optional<std::chrono::steady_clock::time_point> due;
};

// A HEALTHCHECK as it applies to a container (the create body's over the image's).
struct HealthConfig {
  std::vector<std::string> command;  // argv run in the container
  std::chrono::milliseconds interval{30000};
  std::chrono::milliseconds timeout{30000};
  std::chrono::milliseconds start_period{0};
  int retries = 3;
};
// The check's config, nullopt when there is none or it is NONE.
std::optional<HealthConfig> HealthConfigOf(const nlohmann::json& create,
                                           const nlohmann::json& image_config);

// A running container's health, as `docker inspect` shows it (State.Health).
struct HealthState {
  HealthConfig config;
  std::string status = "starting";  // starting, healthy, unhealthy
  int failing_streak = 0;
  std::vector<nlohmann::json> log;  // the last five results
  std::chrono::steady_clock::time_point started;
  std::chrono::steady_clock::time_point next;
  bool checking = false;
  bool active = true;  // false once the container stopped (the last state stays for inspect)
};

// An exec instance (POST /containers/{id}/exec) until its container goes.
struct ExecInstance {
  std::string id;
  std::string container_id;
  runtime::ExecOptions options;
  nlohmann::json body;
  bool running = false;
  bool started = false;
  std::optional<int> exit_code;
  runtime::ExecProcess* process = nullptr;  // while running, under the Impl's mutex
};

struct Api::Impl {
  ApiOptions options;
  runtime::Runtime& runtime;
  builder::Builder& builder;
  base::Logger& logger;
  std::unique_ptr<HttpServer> server;
  std::atomic<bool> stopping{false};

  std::mutex mutex;
  std::map<std::string, ExecInstance> execs;
  // Exit codes of --rm containers removed after they ended, for a wait on "removed".
  std::map<std::string, int> removed_exit_codes;
  base::ThreadSet removers;  // one per --rm container, until it is gone
  // supervisor.cc: restart policies and health checks (under MUTEX).
  std::map<std::string, RestartPlan> restart_plans;
  std::map<std::string, HealthState> health;
  base::ThreadSet health_checks;  // one per check running
  std::thread supervisor;
  // Held while a name is checked and taken (create, rename).
  std::mutex names_mutex;

  Impl(const ApiOptions& options_in, runtime::Runtime& runtime_in, builder::Builder& builder_in,
       base::Logger& logger_in)
      : options(options_in), runtime(runtime_in), builder(builder_in), logger(logger_in) {}

  void Route(const Request& request, Responder& responder);

  // system.cc
  void Ping(const Request& request, Responder& responder);
  void Version(Responder& responder);
  void Info(Responder& responder);

  // images.cc
  void ListImages(const Request& request, Responder& responder);
  void PullImage(const Request& request, Responder& responder);
  void InspectImage(const std::string& name, Responder& responder);
  void TagImage(const std::string& name, const Request& request, Responder& responder);
  void RemoveImage(const std::string& name, const Request& request, Responder& responder);
  void PushImage(const std::string& name, const Request& request, Responder& responder);
  void ImageHistory(const std::string& name, Responder& responder);
  // docker save (NAMES) and load.
  void SaveImages(const std::vector<std::string>& names, Responder& responder);
  void LoadImages(const Request& request, Responder& responder);

  // build.cc
  void BuildImage(const Request& request, Responder& responder);
  void CommitContainer(const Request& request, Responder& responder);
  // After an image's removal, docker rmi's pruning: the untagged intermediate images of its
  // build that nothing else (no container, no other image) uses, child first. Their ids.
  std::vector<std::string> PruneUntaggedParents(const std::string& removed);

  // containers.cc
  void CreateContainer(const Request& request, Responder& responder);
  void ListContainers(const Request& request, Responder& responder);
  void InspectContainer(const std::string& ref, Responder& responder);
  void StartContainer(const std::string& ref, Responder& responder);
  void StopContainer(const std::string& ref, const Request& request, Responder& responder);
  void KillContainer(const std::string& ref, const Request& request, Responder& responder);
  void RestartContainer(const std::string& ref, const Request& request, Responder& responder);
  void WaitContainer(const std::string& ref, const Request& request, Responder& responder);
  void AttachContainer(const std::string& ref, const Request& request, Responder& responder);
  void ResizeContainer(const std::string& ref, const Request& request, Responder& responder);
  void ContainerLogs(const std::string& ref, const Request& request, Responder& responder);
  void ContainerStats(const std::string& ref, const Request& request, Responder& responder);
  void RemoveContainer(const std::string& ref, const Request& request, Responder& responder);
  void PauseContainer(const std::string& ref, bool pause, Responder& responder);
  void TopContainer(const std::string& ref, const Request& request, Responder& responder);
  void RenameContainer(const std::string& ref, const Request& request, Responder& responder);
  // ALREADY_EXISTS (Docker's 409 Conflict text) when a container has NAME; under names_mutex.
  absl::Status NameIsFree(const std::string& name);

  // files.cc: docker cp (HEAD, GET and PUT of the archive), export and import.
  void ContainerArchive(const std::string& ref, const Request& request, Responder& responder);
  void ExportContainer(const std::string& ref, Responder& responder);
  void ImportImage(const Request& request, Responder& responder);

  // supervisor.cc
  // Watches the core's lifecycle events: exits restart by policy, starts begin health checks.
  // At kapald start, exited containers whose policy says so are started again (Docker's rule:
  // `always` even after a docker stop, `unless-stopped` not).
  void StartSupervisor();
  void Supervise();
  void OnExited(const DockerContainer& found);
  void RunDueWork();
  void RestartNow(const std::string& id);
  void WatchHealth(const DockerContainer& found);
  void CheckHealth(const std::string& id, const HealthConfig& config);
  // A docker stop/kill (BY_USER) or start/restart (!BY_USER) of ID: kept on the record, and a
  // pending restart is called off.
  absl::Status MarkStoppedByUser(const std::string& id, bool by_user);
  // The Health object of inspect and the "(healthy)" of ps; nullopt without a check.
  std::optional<HealthState> HealthOf(const std::string& id);
  bool Restarting(const std::string& id);

  // exec.cc
  void CreateExec(const std::string& ref, const Request& request, Responder& responder);
  void StartExec(const std::string& id, const Request& request, Responder& responder);
  void ResizeExec(const std::string& id, const Request& request, Responder& responder);
  void InspectExec(const std::string& id, Responder& responder);

  // volumes_networks.cc
  void ListVolumes(Responder& responder);
  void CreateVolume(const Request& request, Responder& responder);
  void InspectVolume(const std::string& name, Responder& responder);
  void RemoveVolume(const std::string& name, const Request& request, Responder& responder);
  void PruneVolumes(Responder& responder);
  void ListNetworks(Responder& responder);
  void InspectNetwork(const std::string& name, Responder& responder);
  void CreateNetwork(const Request& request, Responder& responder);
  void RemoveNetwork(const std::string& name, Responder& responder);
  void PruneNetworks(Responder& responder);

  // events.cc
  void Events(const Request& request, Responder& responder);
  // prune.cc
  void SystemDf(Responder& responder);
  void PruneContainers(Responder& responder);
  void PruneImages(const Request& request, Responder& responder);
  void PruneBuildCache(Responder& responder);
  // Whether a Docker network of that name (a CNI config's name, or bridge/host/none) exists.
  bool NetworkExists(const std::string& name);

  // The Docker containers (pods labelled kDockerLabel), or one by name, id or id prefix.
  std::vector<DockerContainer> Containers();
  absl::StatusOr<DockerContainer> FindContainer(const std::string& ref);
  // Starts a thread that removes container ID (and its pod) once it has exited (--rm).
  void WatchForRemoval(const std::string& id);
  // Removes the container and its pod; the pod's other state goes with it.
  absl::Status RemoveContainerAndPod(const DockerContainer& found);
  // Docker's JSON views.
  nlohmann::json ContainerSummary(const DockerContainer& found);
  nlohmann::json ContainerInspect(const DockerContainer& found);
};

// The HTTP code and Docker error of STATUS (NOT_FOUND is 404, ALREADY_EXISTS and
// FAILED_PRECONDITION 409, INVALID_ARGUMENT 400, ...).
void ReplyError(Responder& responder, const absl::Status& status);
int HttpCodeOf(const absl::Status& status);

// RFC 3339 with nanoseconds in UTC, as Docker writes times; the zero time for 0.
std::string DockerTime(int64_t unix_nanos);
// Docker's human durations: "Less than a second", "5 seconds", "About a minute", "3 hours".
std::string HumanDuration(int64_t seconds);
// How Docker shows a reference: docker.io/library/busybox:latest is busybox:latest.
std::string FamiliarReference(const std::string& reference);
// The credentials of a X-Registry-Auth header (base64url JSON); anonymous when absent.
images::Credentials CredentialsOf(const Request& request);
// One AuthConfig object of the Docker API.
images::Credentials CredentialsFromJson(const nlohmann::json& auth);

// The image's config document ("config" inside the image JSON), {} when unreadable.
nlohmann::json ImageConfigOf(const std::string& config_json);

}  // namespace kapal::docker
