#include "runtime/runtime.h"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/files.h"
#include "runtime/checkpoint.h"
#include "runtime/cni.h"
#include "runtime/exit_monitor.h"
#include "runtime/handlers.h"
#include "runtime/namespaces.h"
#include "runtime/node_state.h"
#include "runtime/pod_cidr.h"
#include "runtime/recovery.h"
#include "runtime/sandbox_metrics.h"
#include "runtime/sandboxes.h"
#include "runtime/stats.h"

namespace kapal::runtime {

namespace {

constexpr char kPodCidrSetting[] = "pod_cidr";

}  // namespace

// The pieces, each with one job, in the order they depend on each other.
struct Runtime::Parts {
  Parts(const Options& options_in, const HostFacts& host_in, store::Store& store_in,
        images::ImageStore& image_records, snapshotter::Snapshotter& snapshots, Images& images_in,
        metrics::Registry& metrics, base::Logger& logger)
      : options(options_in),
        host(host_in),
        store(store_in),
        images(images_in),
        records(store_in, options_in.state_dir),
        handlers(options, host),
        phases(metrics),
        node_metrics(metrics, state),
        events(state, metrics, 4096, &journal),
        cgroups(ResolveCgroupDriver(options.cgroup_driver, host), host.cgroup_layout, host.cgroups),
        exits(state, records, handlers, node_metrics, events, logger, options.state_dir + "/exits"),
        containers(options, cgroups, state, records, handlers, exits, image_records, snapshots,
                   phases, node_metrics, events, logger),
        sandboxes(options, cgroups, state, records, handlers, containers, phases, events, logger),
        stats(cgroups, host.cgroup_layout, state, snapshots, snapshots.WritableRoot()),
        recovery(options, state, records, handlers, containers, sandboxes, exits, snapshots,
                 logger),
        volumes(store_in, options_in.root_dir + "/volumes", &journal),
        networks(options_in.cni_conf_dir, &journal, logger) {}

  const Options options;
  const HostFacts& host;
  store::Store& store;
  Images& images;
  NodeState state;
  RecordStore records;
  Handlers handlers;
  PhaseMetrics phases;
  NodeMetrics node_metrics;
  Journal journal;
  NodeEvents events;
  Cgroups cgroups;
  ExitMonitor exits;
  Containers containers;
  Sandboxes sandboxes;
  Stats stats;
  Recovery recovery;
  CheckpointSupport checkpoints;
  Volumes volumes;
  Networks networks;
};

absl::StatusOr<std::unique_ptr<Runtime>> Runtime::Start(const Options& options,
                                                        const HostFacts& host, store::Store& store,
                                                        images::ImageStore& image_records,
                                                        snapshotter::Snapshotter& snapshots,
                                                        Images& images, metrics::Registry& metrics,
                                                        base::Logger& logger) {
  for (const char* dir : {"/pods", "/containers", "/runtime", "/exits"}) {
    if (absl::Status made = base::MakeDirectories(options.state_dir + dir, 0711); !made.ok()) {
      return made;
    }
  }
  auto parts = std::make_unique<Parts>(options, host, store, image_records, snapshots, images,
                                       metrics, logger);
  parts->cgroups.OpenUpSharedParent();
  images.AttachJournal(&parts->journal);
  if (absl::Status recovered = parts->recovery.Run(); !recovered.ok()) return recovered;
  if (absl::Status watching = parts->exits.Start(); !watching.ok()) return watching;
  return std::unique_ptr<Runtime>(new Runtime(std::move(parts)));
}

Runtime::Runtime(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}
Runtime::~Runtime() = default;

absl::StatusOr<std::string> Runtime::RunPod(const runtime::v1::PodSandboxConfig& config,
                                            const std::string& runtime_handler) {
  return parts_->sandboxes.Run(config, runtime_handler);
}
absl::Status Runtime::StopPod(const std::string& id) { return parts_->sandboxes.Stop(id); }
absl::Status Runtime::RemovePod(const std::string& id) { return parts_->sandboxes.Remove(id); }
absl::StatusOr<Pod> Runtime::GetPod(const std::string& id) { return parts_->sandboxes.Get(id); }
absl::Status Runtime::UpdatePodResources(const std::string& id,
                                         const runtime::v1::LinuxContainerResources& overhead,
                                         const runtime::v1::LinuxContainerResources& resources) {
  return parts_->sandboxes.UpdateResources(id, overhead, resources);
}
std::vector<Pod> Runtime::ListPods() { return parts_->sandboxes.List(); }

absl::StatusOr<std::string> Runtime::CreateContainer(const std::string& pod_id,
                                                     const runtime::v1::ContainerConfig& config) {
  return parts_->containers.Create(pod_id, config);
}
absl::Status Runtime::StartContainer(const std::string& id) { return parts_->containers.Start(id); }
absl::Status Runtime::StopContainer(const std::string& id, std::chrono::seconds timeout) {
  return parts_->containers.Stop(id, timeout);
}
absl::Status Runtime::RemoveContainer(const std::string& id) {
  return parts_->containers.Remove(id);
}
absl::StatusOr<Container> Runtime::GetContainer(const std::string& id) {
  return parts_->containers.Get(id);
}
std::vector<Container> Runtime::ListContainers() { return parts_->containers.List(); }
std::vector<Container> Runtime::ListContainersOf(const std::string& pod_id) {
  std::vector<Container> containers = parts_->containers.List(pod_id);
  SortNewestFirst(containers);
  return containers;
}
absl::Status Runtime::SignalContainer(const std::string& id, int signal) {
  return parts_->containers.Signal(id, signal);
}
absl::StatusOr<Container> Runtime::WaitForExit(const std::string& id,
                                               std::chrono::milliseconds timeout) {
  return parts_->containers.WaitForExit(id, timeout);
}
absl::Status Runtime::RecreateContainer(const std::string& id) {
  return parts_->containers.Recreate(id);
}
absl::Status Runtime::PauseContainer(const std::string& id) { return parts_->containers.Pause(id); }
absl::Status Runtime::ResumeContainer(const std::string& id) {
  return parts_->containers.Resume(id);
}
bool Runtime::ContainerPaused(const std::string& id) { return parts_->containers.Paused(id); }
absl::StatusOr<std::vector<int>> Runtime::ContainerProcesses(const std::string& id) {
  return parts_->containers.Processes(id);
}
absl::Status Runtime::AnnotateContainer(const std::string& id,
                                        const std::map<std::string, std::string>& values) {
  return parts_->containers.SetAnnotations(id, values);
}
absl::StatusOr<ContainerFiles> Runtime::FilesOf(const std::string& id) {
  absl::StatusOr<Container> container = parts_->containers.Get(id);
  if (!container.ok()) return container.status();
  return ContainerFiles(std::move(*container));
}
absl::StatusOr<ExecResult> Runtime::ExecSync(const std::string& id,
                                             const std::vector<std::string>& cmd,
                                             std::chrono::seconds timeout) {
  ExecOptions options;
  options.cmd = cmd;
  return parts_->containers.ExecSync(id, options, timeout);
}
absl::StatusOr<ExecResult> Runtime::ExecSync(const std::string& id, const ExecOptions& options,
                                             std::chrono::seconds timeout) {
  return parts_->containers.ExecSync(id, options, timeout);
}
absl::Status Runtime::ReopenContainerLog(const std::string& id) {
  return parts_->containers.ReopenLog(id);
}

absl::StatusOr<std::unique_ptr<ExecProcess>> Runtime::StartExec(const std::string& id,
                                                                const ExecOptions& options) {
  return parts_->containers.StartExec(id, options);
}
absl::StatusOr<AttachedContainer> Runtime::Attach(const std::string& id, bool before_start) {
  return parts_->containers.Attach(id, before_start);
}
absl::Status Runtime::ResizeContainerTerminal(const std::string& id, uint16_t columns,
                                              uint16_t rows) {
  return parts_->containers.ResizeTerminal(id, columns, rows);
}

absl::StatusOr<base::UniqueFd> Runtime::DialPod(const std::string& pod_id, uint16_t port) {
  absl::StatusOr<Pod> pod = parts_->sandboxes.Get(pod_id);
  if (!pod.ok()) return pod.status();
  if (!pod->ready) {
    return absl::FailedPreconditionError(
        absl::StrCat("pod ", pod->id, " is not ready; port forwarding needs a running pod"));
  }
  base::UniqueFd socket;
  int error = 0;
  auto make_socket = [&] {
    socket.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    error = errno;
  };
  if (pod->own.network) {
    if (absl::Status entered = InNetworkNamespace(pod->dir + "/net", make_socket); !entered.ok()) {
      return entered;
    }
  } else {
    make_socket();
  }
  if (!socket) return base::ErrnoStatus(error, "socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // Loopback answers at once: a refused or unreachable port fails fast, no timeout needed.
  if (::connect(socket.Get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    return absl::UnavailableError(
        absl::StrCat("connect to port ", port, " in pod ", pod->id, ": ", std::strerror(errno)));
  }
  return socket;
}

absl::Status Runtime::UpdateContainerResources(
    const std::string& id, const runtime::v1::LinuxContainerResources& resources) {
  return parts_->containers.UpdateResources(id, resources);
}

absl::StatusOr<runtime::v1::ContainerStats> Runtime::ContainerStats(const std::string& id) {
  return parts_->stats.OfContainer(id);
}
Volumes& Runtime::volumes() { return parts_->volumes; }

std::vector<std::string> Runtime::VolumeUsers(const std::string& name) {
  std::string data = parts_->volumes.DataPath(name);
  std::vector<std::string> users;
  for (const Container& c : parts_->containers.List()) {
    for (const runtime::v1::Mount& mount : c.config.mounts()) {
      if (mount.host_path() == data || absl::StartsWith(mount.host_path(), data + "/")) {
        users.push_back(c.id);
        break;
      }
    }
  }
  return users;
}

absl::Status Runtime::RemoveVolume(const std::string& name) {
  if (absl::StatusOr<Volume> known = parts_->volumes.Get(name); !known.ok()) {
    return known.status();
  }
  std::vector<std::string> users = VolumeUsers(name);
  if (!users.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("remove ", name, ": volume is in use - [", absl::StrJoin(users, ", "), "]"));
  }
  return parts_->volumes.Remove(name);
}

Networks& Runtime::networks() { return parts_->networks; }

std::vector<Pod> Runtime::NetworkUsers(const std::string& name) {
  absl::StatusOr<Network> network = parts_->networks.Get(name);
  std::vector<Pod> users;
  for (Pod& pod : ListPods()) {
    std::string wanted = NetworkNameOf(pod.config);
    bool on_it = wanted == name || (wanted.empty() && network.ok() && network->is_default);
    bool host_network =
        pod.config.linux().security_context().namespace_options().network() == runtime::v1::NODE;
    if (on_it && !host_network) {
      users.push_back(std::move(pod));
    }
  }
  return users;
}

absl::Status Runtime::RemoveNetwork(const std::string& name) {
  absl::StatusOr<Network> network = parts_->networks.Get(name);
  if (!network.ok()) return network.status();
  std::vector<Pod> users = NetworkUsers(name);
  if (!users.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("error while removing network: network ", name, " has active endpoints (pod ",
                     users.front().config.metadata().namespace_(), "/",
                     users.front().config.metadata().name(), ")"));
  }
  return parts_->networks.Remove(name);
}

absl::StatusOr<CgroupSample> Runtime::ContainerCgroupSample(const std::string& id) {
  return parts_->stats.SampleOfContainer(id);
}
std::vector<runtime::v1::ContainerStats> Runtime::ListContainerStats(
    const runtime::v1::ContainerStatsFilter& filter) {
  return parts_->stats.OfContainers(filter);
}
absl::StatusOr<runtime::v1::PodSandboxStats> Runtime::PodSandboxStats(const std::string& id) {
  return parts_->stats.OfPod(id);
}
std::vector<runtime::v1::MetricDescriptor> Runtime::MetricDescriptors() const {
  return SandboxMetricDescriptors();
}
std::vector<runtime::v1::PodSandboxMetrics> Runtime::ListPodSandboxMetrics() {
  return parts_->stats.MetricsOfPods();
}

std::vector<runtime::v1::PodSandboxStats> Runtime::ListPodSandboxStats(
    const runtime::v1::PodSandboxStatsFilter& filter) {
  return parts_->stats.OfPods(filter);
}

Images& Runtime::images() { return parts_->images; }

absl::Status Runtime::CheckpointContainer(const std::string& id, const std::string& location) {
  absl::StatusOr<Container> container = parts_->containers.Get(id);
  if (!container.ok()) return container.status();
  if (container->state != runtime::v1::CONTAINER_RUNNING) {
    return absl::FailedPreconditionError(absl::StrCat("container ", container->id, " is ",
                                                      ContainerStateName(container->state),
                                                      "; only a running one can be checkpointed"));
  }
  if (location.empty() || location[0] != '/') {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint location \"", location,
                                                   "\" must be an absolute path of the archive"));
  }
  if (absl::Status supported = parts_->checkpoints.Check(); !supported.ok()) return supported;
  return absl::UnimplementedError(
      "CRIU works on this host, but kapald does not write checkpoint archives yet");
}

Journal& Runtime::journal() { return parts_->journal; }

std::unique_ptr<NodeEvents::Subscription> Runtime::SubscribeEvents() {
  return parts_->events.Subscribe();
}
void Runtime::EndEventStreams() { parts_->events.Close(); }

Condition Runtime::RuntimeReady() const { return CheckRuntimeReady(parts_->options); }
Condition Runtime::NetworkReady() const { return CheckNetworkReady(parts_->options); }
std::vector<std::string> Runtime::HandlerNames() const { return parts_->handlers.Names(); }
HandlerFeatures Runtime::FeaturesOf(const std::string& name) const {
  absl::StatusOr<const Handler*> handler = parts_->handlers.Find(name);
  return handler.ok() ? (*handler)->features : HandlerFeatures{};
}
CgroupDriver Runtime::cgroup_driver() const {
  return ResolveCgroupDriver(parts_->options.cgroup_driver, parts_->host);
}
const HostFacts& Runtime::host() const { return parts_->host; }

absl::Status Runtime::SetPodCidr(const std::string& cidrs) {
  if (absl::Status valid = ValidatePodCidrs(cidrs); !valid.ok()) return valid;
  if (cidrs.empty()) return absl::OkStatus();
  return parts_->store.PutSetting(kPodCidrSetting, cidrs);
}

absl::StatusOr<std::string> Runtime::PodCidr() {
  absl::StatusOr<std::optional<std::string>> stored = parts_->store.GetSetting(kPodCidrSetting);
  if (!stored.ok()) return stored.status();
  return stored->value_or("");
}

nlohmann::json Runtime::Describe() {
  nlohmann::json described = {{"database", parts_->store.Path()},
                              {"schemaVersion", parts_->store.SchemaVersion()},
                              {"pods", parts_->handlers.Describe()}};
  if (absl::StatusOr<snapshotter::UnsyncedCounts> unsynced = parts_->images.UnsyncedLayers();
      unsynced.ok()) {
    described["unsyncedLayers"] = {{"thisBoot", unsynced->this_boot},
                                   {"earlierBoot", unsynced->earlier_boot}};
  }
  return described;
}

}  // namespace kapal::runtime
