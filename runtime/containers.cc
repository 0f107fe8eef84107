#include "runtime/containers.h"

#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <optional>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "images/garbage.h"
#include "nlohmann/json.hpp"
#include "runtime/cdi.h"
#include "runtime/container_mounts.h"
#include "runtime/namespaces.h"
#include "runtime/oci_spec.h"
#include "runtime/signals.h"
#include "shim/exit_file.h"
#include "snapshotter/mount.h"

namespace kapal::runtime {

namespace {

using runtime::v1::ContainerConfig;

// After the stop signal's grace period, SIGKILL; this long more for the exit to be recorded.
constexpr std::chrono::seconds kKillWait(10);

// Reserved while a container is started, recreated or removed: each of them excludes the others.
std::string LifecycleKey(const std::string& id) { return "lifecycle:" + id; }

}  // namespace

Containers::Containers(const Options& options, const Cgroups& cgroups, NodeState& state,
                       RecordStore& records, const Handlers& handlers, ExitMonitor& exits,
                       images::ImageStore& images, snapshotter::Snapshotter& snapshots,
                       PhaseMetrics& phases, NodeMetrics& metrics, NodeEvents& events,
                       base::Logger& logger)
    : options_(options),
      cgroups_(cgroups),
      state_(state),
      records_(records),
      handlers_(handlers),
      exits_(exits),
      images_(images),
      snapshots_(snapshots),
      phases_(phases),
      metrics_(metrics),
      events_(events),
      logger_(logger) {}

absl::StatusOr<const Handler*> Containers::HandlerOfLocked(const Container& c) const {
  auto pod = state_.pods.find(c.pod_id);
  return handlers_.Find(pod != state_.pods.end() ? pod->second.runtime_handler : "");
}

absl::StatusOr<Container*> Containers::FindLocked(const std::string& id_or_prefix) {
  absl::StatusOr<std::string> resolved = state_.ResolveContainerIdLocked(id_or_prefix);
  if (!resolved.ok()) return resolved.status();
  Container& c = state_.containers.at(*resolved);
  exits_.RefreshLocked(c);
  return &c;
}

absl::StatusOr<std::string> Containers::Create(const std::string& pod_id,
                                               const ContainerConfig& config) {
  PhaseTimer timer(phases_, "create_container");
  const auto& meta = config.metadata();
  if (meta.name().empty()) return absl::InvalidArgumentError("container metadata needs a name");
  if (config.image().image().empty()) {
    return absl::InvalidArgumentError("container config names no image");
  }
  if (!config.log_path().empty()) {
    if (config.log_path()[0] == '/' ||
        absl::StrContains(absl::StrCat("/", config.log_path(), "/"), "/../")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "log_path \"", config.log_path(),
          "\" must be relative to the pod's log_directory and must not contain \"..\""));
    }
  }
  for (const runtime::v1::Mount& mount : config.mounts()) {
    // An image volume names an image, not a host path.
    if (absl::Status checked = mount.image().image().empty()
                                   ? CheckClientPath(mount.host_path(), "mount host_path")
                                   : absl::OkStatus();
        !checked.ok()) {
      return checked;
    }
    if (absl::Status checked = CheckClientPath(mount.container_path(), "mount container_path");
        !checked.ok()) {
      return checked;
    }
  }
  absl::StatusOr<images::ImageRecord> image = images_.Find(config.image().image());
  if (absl::IsNotFound(image.status())) {
    return absl::NotFoundError(
        absl::StrCat("image \"", config.image().image(), "\" not found; pull it first"));
  }
  if (!image.ok()) return image.status();

  // Checked and reserved under the lock; the container is then made without it.
  Pod pod;
  std::optional<NameReservation> reservation;
  {
    std::lock_guard lock(state_.mutex);
    absl::StatusOr<std::string> resolved = state_.ResolvePodIdLocked(pod_id);
    if (!resolved.ok()) return resolved.status();
    pod = state_.pods.at(*resolved);
    if (!pod.ready) {
      return absl::FailedPreconditionError(
          absl::StrCat("pod sandbox ", pod.id, " is not ready (stopped); run a new one"));
    }
    for (const auto& [id, other] : state_.containers) {
      if (other.pod_id == pod.id && other.config.metadata().name() == meta.name() &&
          other.config.metadata().attempt() == meta.attempt()) {
        return absl::AlreadyExistsError(absl::StrCat("container name ", meta.name(), " (attempt ",
                                                     meta.attempt(), ") is already used by ", id,
                                                     " in pod ", pod.id));
      }
    }
    absl::StatusOr<NameReservation> taken = NameReservation::TakeLocked(
        state_, absl::StrCat("container/", pod.id, "/", meta.name(), "/", meta.attempt()),
        absl::StrCat("container name ", meta.name(),
                     " is being used by a CreateContainer in progress in pod ", pod.id));
    if (!taken.ok()) return taken.status();
    reservation.emplace(std::move(*taken));
  }
  absl::StatusOr<const Handler*> handler = handlers_.Find(pod.runtime_handler);
  if (!handler.ok()) return handler.status();
  for (const runtime::v1::Mount& mount : config.mounts()) {
    if (mount.recursive_read_only() && !(*handler)->features.recursive_read_only) {
      return absl::FailedPreconditionError(absl::StrCat(
          "mount ", mount.container_path(),
          " asks to be recursively read-only; "
          "runtime handler \"",
          (*handler)->name, "\" (", (*handler)->runtime.Binary(), ") cannot make it so"));
    }
  }

  Container c;
  c.id = NewId();
  c.pod_id = pod.id;
  c.config = config;
  c.image_id = image->id.String();
  c.image_ref = image->repo_digests.empty() ? image->id.String() : image->repo_digests.front();
  c.state = runtime::v1::CONTAINER_CREATED;
  c.snapshot_key = kContainerSnapshotPrefix + c.id;
  c.created_at = NowNanos();
  c.bundle = records_.ContainerBundle(c.id);
  if (!pod.config.log_directory().empty() && !config.log_path().empty()) {
    c.log_path = absl::StrCat(pod.config.log_directory(), "/", config.log_path());
  } else {
    // No log path asked for: keep the output in the bundle, so `kapalctl logs` still works.
    c.log_path = c.bundle + "/output.log";
  }
  ImageRuntimeConfig image_config = ImageRuntimeConfig::Parse(image->config_json);
  c.stop_signal = config.stop_signal() != runtime::v1::RUNTIME_DEFAULT
                      ? SignalNumberOf(config.stop_signal())
                      : ParseSignal(image_config.stop_signal);
  if (c.stop_signal == 0) c.stop_signal = SIGTERM;

  BundleMountInputs mount_inputs;
  mount_inputs.snapshot_key = c.snapshot_key;
  mount_inputs.bundle = c.bundle;
  mount_inputs.shim_binary = handlers_.ShimBinary();
  mount_inputs.pod_dir = pod.dir;
  if (pod.own.user) {
    absl::StatusOr<std::optional<IdMappings>> userns = PodUserNamespace(pod.config);
    if (!userns.ok()) return userns.status();
    mount_inputs.pod_userns = *userns;
  }

  bool done = false;
  bool prepared = false;
  const OciRuntime& runtime = (*handler)->runtime;
  struct Undo {
    std::function<void()> fn;
    ~Undo() { fn(); }
  } undo{[&] {
    if (done) return;
    (void)runtime.Delete(c.id);
    // The bundle goes only once nothing is mounted below it.
    if (!UnmountBundle(snapshots_, c.bundle, c.snapshot_key).ok()) return;
    if (prepared) (void)snapshots_.Remove(c.snapshot_key);
    (void)base::RemoveTree(c.bundle);
  }};

  // 0711, as containerd's bundles: a container in a user namespace (not the host's root) must
  // be able to reach its root filesystem; nothing in the bundle can be listed or read by others.
  if (absl::Status made = base::MakeDirectories(c.bundle + "/rootfs", 0711); !made.ok()) {
    return made;
  }
  timer.Mark("checks");
  absl::StatusOr<std::vector<snapshotter::Mount>> mounts = snapshots_.Prepare(
      c.snapshot_key, image->top_chain_id.String(), snapshotter::Placement::kWritable);
  if (!mounts.ok()) return Annotate(mounts.status(), "prepare the root filesystem");
  prepared = true;
  timer.Mark("snapshot");
  if (absl::Status mounted = bundle_mounts_.MountRootfs(mount_inputs, *mounts); !mounted.ok()) {
    return Annotate(mounted, "mount the root filesystem");
  }
  absl::StatusOr<ContainerConfig> spec_config = bundle_mounts_.MountVolumes(mount_inputs, config);
  if (!spec_config.ok()) return spec_config.status();
  timer.Mark("mount");

  absl::StatusOr<ProcessUser> user = ResolveUser(c.bundle + "/rootfs", config, image_config.user);
  if (!user.ok()) return user.status();
  c.user = *user;
  SpecInputs inputs;
  inputs.container_id = c.id;
  inputs.container = &*spec_config;
  inputs.pod = &pod.config;
  if (mount_inputs.pod_userns.has_value()) {
    inputs.user_namespace_path = pod.dir + "/user";
    inputs.user_mappings = *mount_inputs.pod_userns;
  }
  inputs.image = image_config;
  inputs.user = *user;
  inputs.rootfs = c.bundle + "/rootfs";
  absl::StatusOr<std::string> hostname = base::ReadFile(pod.dir + "/hostname");
  inputs.hostname = hostname.ok() ? std::string(absl::StripTrailingAsciiWhitespace(*hostname)) : "";
  inputs.pod_files = {pod.dir, pod.own};
  inputs.cgroups_path = cgroups_.ContainerPath(pod, c.id);
  if (config.linux().security_context().namespace_options().pid() == runtime::v1::POD &&
      pod.own.pid) {
    if (!InPinnedPidNamespace(pod.dir, pod.infra_pid)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "pod sandbox ", pod.id, " has lost its infra process (its shared PID namespace)"));
    }
    inputs.pid_namespace_path = pod.dir + "/pid";
  }
  inputs.cgroups = cgroups_.Support();
  if (config.linux().resources().hugepage_limits_size() > 0 && !inputs.cgroups.hugetlb) {
    logger_.Debug("container ", c.id,
                  ": hugepage limits left out, this host has no hugetlb "
                  "cgroup controller");
  }
  inputs.min_oom_score_adj = handlers_.MinOomScoreAdj();
  inputs.held_capabilities = handlers_.HeldCapabilities();
  absl::StatusOr<nlohmann::json> spec = BuildContainerSpec(inputs);
  if (!spec.ok()) return spec.status();
  std::vector<std::string> cdi_devices;
  for (const runtime::v1::CDIDevice& device : config.cdi_devices()) {
    cdi_devices.push_back(device.name());
  }
  if (absl::Status edited = ApplyCdiDevices(cdi_devices, options_.cdi_spec_dirs, *spec);
      !edited.ok()) {
    return edited;
  }
  if (absl::Status written = base::WriteFileAtomically(c.bundle + "/config.json", spec->dump(),
                                                       0600, base::Durability::kVolatile);
      !written.ok()) {
    return written;
  }
  timer.Mark("spec");
  size_t slash = c.log_path.rfind('/');
  if (absl::Status made = base::MakeDirectories(c.log_path.substr(0, slash), 0755); !made.ok()) {
    return made;
  }

  ShimLaunch launch = LaunchOf(c, pod);
  // Record the container before the shim starts, so a crash in between leaves a record that
  // the next start resolves (the shim's exit file or its absence), never an unknown process.
  if (absl::Status saved = records_.SaveContainer(c); !saved.ok()) return saved;
  timer.Mark("record");
  absl::StatusOr<ShimProcess> shim = runtime.Create(launch);
  if (!shim.ok()) {
    (void)records_.DeleteContainer(c.id);
    return Annotate(shim.status(), "create the container");
  }
  // The record already names the container; the shim's pid reaches the store with the next
  // change (start), and until then the shim's own pid file tells a restarted kapald.
  c.shim_pid = shim->shim_pid;
  timer.Mark("runtime_create");
  done = true;
  std::string id = c.id;
  std::lock_guard lock(state_.mutex);
  state_.containers[id] = std::move(c);
  events_.PublishLocked(LifecycleChange::kCreated, id, pod.id);
  logger_.Info("container ", meta.name(), " created as ", id, " in pod ", pod.id);
  logger_.Debug("container ", id, " created in ", timer.Summary());
  return id;
}

ShimLaunch Containers::LaunchOf(const Container& c, const Pod& pod) const {
  ShimLaunch launch;
  launch.shim_binary = handlers_.ShimBinary();
  launch.container_id = c.id;
  launch.bundle = c.bundle;
  launch.log_path = c.log_path;
  launch.oom_file = cgroups_.OomFile(cgroups_.ContainerPath(pod, c.id));
  launch.exit_dir = exits_.ExitDir();
  launch.terminal = c.config.tty();
  launch.stdin_open = c.config.stdin();
  launch.stdin_once = c.config.stdin_once();
  return launch;
}

absl::Status Containers::Start(const std::string& id_or_prefix) {
  PhaseTimer timer(phases_, "start_container");
  std::string id;
  const Handler* handler = nullptr;
  std::optional<NameReservation> starting;
  {
    std::lock_guard lock(state_.mutex);
    absl::StatusOr<Container*> found_container = FindLocked(id_or_prefix);
    if (!found_container.ok()) return found_container.status();
    Container& c = **found_container;
    if (c.state != runtime::v1::CONTAINER_CREATED) {
      return absl::FailedPreconditionError(absl::StrCat("container ", c.id, " is ",
                                                        ContainerStateName(c.state),
                                                        "; only a created one can start"));
    }
    absl::StatusOr<const Handler*> found = HandlerOfLocked(c);
    if (!found.ok()) return found.status();
    handler = *found;
    id = c.id;
    absl::StatusOr<NameReservation> taken = NameReservation::TakeLocked(
        state_, LifecycleKey(id),
        absl::StrCat("container ", id, " is being started, restarted or removed already"));
    if (!taken.ok()) return absl::FailedPreconditionError(taken.status().message());
    starting.emplace(std::move(*taken));
    c.starting = true;
  }
  timer.Mark("checks");
  // `runc start` runs without the node lock: other pods' calls (and this node's lists) need not
  // wait for it. The process runs from inside `start` on; it may even have exited when start
  // returns.
  int64_t starting_at = NowNanos();
  absl::Status started = handler->runtime.Start(id);
  timer.Mark("runtime_start");
  std::lock_guard lock(state_.mutex);
  auto found = state_.containers.find(id);
  if (found == state_.containers.end()) {
    return absl::NotFoundError(absl::StrCat("container ", id, " was removed while it started"));
  }
  Container& c = found->second;
  c.starting = false;
  if (!started.ok()) {
    // A process that failed to exec (no such command) shows here; record it as an exit.
    c.state = runtime::v1::CONTAINER_EXITED;
    c.exit_code = 128;
    c.reason = "StartError";
    c.message = std::string(started.message());
    c.finished_at = NowNanos();
    (void)records_.SaveContainer(c);
    state_.containers_changed.notify_all();
    metrics_.ContainerExited(c.reason);
    events_.PublishLocked(LifecycleChange::kStopped, c.id, c.pod_id);
    return Annotate(started, "start container " + c.id);
  }
  metrics_.ContainerStarted(c.config.metadata().attempt());
  c.started_at = starting_at;
  // The exit monitor may have seen a short process end already; then it stays exited.
  if (c.state == runtime::v1::CONTAINER_CREATED) c.state = runtime::v1::CONTAINER_RUNNING;
  absl::Status saved = records_.SaveContainer(c);
  events_.PublishLocked(LifecycleChange::kStarted, c.id, c.pod_id);
  // A container that ends at once may have exited already; its exit is reported after the start.
  exits_.RefreshLocked(c);
  timer.Mark("record");
  return saved;
}

absl::Status Containers::Stop(const std::string& id_or_prefix, std::chrono::seconds timeout) {
  PhaseTimer timer(phases_, "stop_container");
  std::string id;
  std::string bundle;
  int stop_signal = SIGTERM;
  const Handler* handler = nullptr;
  {
    std::lock_guard lock(state_.mutex);
    absl::StatusOr<Container*> found_container = FindLocked(id_or_prefix);
    // Idempotent as CRI asks (kubelet stops again what it may have removed already).
    if (absl::IsNotFound(found_container.status())) return absl::OkStatus();
    if (!found_container.ok()) return found_container.status();
    Container& c = **found_container;
    if (c.state == runtime::v1::CONTAINER_EXITED || c.state == runtime::v1::CONTAINER_UNKNOWN) {
      return absl::OkStatus();  // idempotent
    }
    absl::StatusOr<const Handler*> found = HandlerOfLocked(c);
    if (!found.ok()) return found.status();
    handler = *found;
    id = c.id;
    bundle = c.bundle;
    stop_signal = c.stop_signal;
  }
  // A paused (frozen) container cannot act on a signal: thaw it first, as Docker does.
  if (Paused(id)) {
    (void)handler->runtime.Resume(id);
    MarkPaused(id, false);
  }
  std::string exit_file = bundle + "/" + shim::kExitFile;
  bool created_only = false;
  {
    std::lock_guard lock(state_.mutex);
    created_only = state_.containers.count(id) > 0 &&
                   state_.containers.at(id).state == runtime::v1::CONTAINER_CREATED;
  }
  if (timeout.count() > 0 && !created_only) {
    absl::Status signalled = handler->runtime.Kill(id, stop_signal);
    if (!signalled.ok() && !absl::IsNotFound(signalled)) return signalled;
    timer.Mark("stop_signal");
    (void)AwaitExitRecord(bundle, timeout);
    timer.Mark("exit_after_stop_signal");
  }
  if (::access(exit_file.c_str(), F_OK) != 0) {
    absl::Status killed = handler->runtime.Kill(id, SIGKILL, /*all=*/true);
    if (!killed.ok() && !absl::IsNotFound(killed)) return killed;
    timer.Mark("kill");
    if (!AwaitExitRecord(bundle, kKillWait)) {
      return absl::DeadlineExceededError(absl::StrCat("container ", id, " did not exit within ",
                                                      kKillWait.count(), " s of SIGKILL"));
    }
    timer.Mark("exit_after_kill");
  }
  std::lock_guard lock(state_.mutex);
  if (state_.containers.count(id) > 0) exits_.RefreshLocked(state_.containers.at(id));
  return absl::OkStatus();
}

absl::Status Containers::CleanUpLocked(const Container& c) {
  absl::StatusOr<const Handler*> handler = HandlerOfLocked(c);
  return CleanUp(c, handler.ok() ? *handler : nullptr);
}

absl::Status Containers::CleanUp(const Container& c, const Handler* handler) {
  if (handler != nullptr) {
    if (absl::Status deleted = handler->runtime.Delete(c.id); !deleted.ok()) return deleted;
  }
  if (absl::Status unmounted = UnmountBundle(snapshots_, c.bundle, c.snapshot_key);
      !unmounted.ok()) {
    return unmounted;
  }
  absl::Status snapshot = snapshots_.Remove(c.snapshot_key);
  if (!snapshot.ok() && !absl::IsNotFound(snapshot)) return snapshot;
  // The image may have been removed while the container used it (or one of its image volumes
  // did: their views kept the layers): its layers go now.
  bool image_volumes =
      std::any_of(c.config.mounts().begin(), c.config.mounts().end(),
                  [](const auto& mount) { return !mount.image().image().empty(); });
  if (absl::StatusOr<images::ImageRecord> image = images_.Find(c.image_id);
      absl::IsNotFound(image.status()) || image_volumes) {
    if (absl::Status collected = images::RemoveUnusedSnapshots(images_, snapshots_);
        !collected.ok()) {
      logger_.Warn("removing the layers of a removed image: ", collected.message());
    }
  }
  return base::RemoveTree(c.bundle);
}

absl::Status Containers::Remove(const std::string& id_or_prefix) {
  PhaseTimer timer(phases_, "remove_container");
  std::string id;
  {
    std::lock_guard lock(state_.mutex);
    absl::StatusOr<std::string> resolved = state_.ResolveContainerIdLocked(id_or_prefix);
    if (absl::IsNotFound(resolved.status())) return absl::OkStatus();  // idempotent
    if (!resolved.ok()) return resolved.status();
    id = *resolved;
  }
  // A restart in progress (Recreate, e.g. a Docker restart policy reacting to the stop below)
  // would write a new shim's files into the bundle this removes: the two exclude each other.
  // A remove waits for a start or recreate to finish; they refuse while a remove runs.
  std::optional<NameReservation> lifecycle;
  for (auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);;) {
    absl::StatusOr<NameReservation> taken = NameReservation::Take(state_, LifecycleKey(id), "");
    if (taken.ok()) {
      lifecycle.emplace(std::move(*taken));
      break;
    }
    if (std::chrono::steady_clock::now() >= give_up) {
      return absl::UnavailableError(
          absl::StrCat("container ", id, " is being restarted or removed; try again"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  if (absl::Status stopped = Stop(id, std::chrono::seconds(0)); !stopped.ok()) {
    return stopped;
  }
  timer.Mark("stop");
  // The runtime's delete, the unmount and the removal of the snapshot and bundle run on a copy
  // without the node lock, so that other pods' calls do not wait for them; each step is
  // idempotent, so a second remove of the same container at once is harmless.
  Container copy;
  const Handler* handler = nullptr;
  {
    std::lock_guard lock(state_.mutex);
    auto found = state_.containers.find(id);
    if (found == state_.containers.end()) return absl::OkStatus();
    copy = found->second;
    absl::StatusOr<const Handler*> of = HandlerOfLocked(copy);
    if (of.ok()) handler = *of;
  }
  if (absl::Status cleaned = CleanUp(copy, handler); !cleaned.ok()) {
    return Annotate(cleaned, "remove container " + id);
  }
  timer.Mark("clean_up");
  std::lock_guard lock(state_.mutex);
  auto found = state_.containers.find(id);
  if (found == state_.containers.end()) return absl::OkStatus();  // the other remove was first
  if (absl::Status deleted = records_.DeleteContainer(id); !deleted.ok()) return deleted;
  std::string pod_id = found->second.pod_id;
  state_.containers.erase(found);
  state_.containers_changed.notify_all();
  events_.PublishLocked(LifecycleChange::kDeleted, id, pod_id);
  timer.Mark("record");
  return absl::OkStatus();
}

absl::StatusOr<Container> Containers::Get(const std::string& id) {
  std::lock_guard lock(state_.mutex);
  absl::StatusOr<std::string> resolved = state_.ResolveContainerIdLocked(id);
  if (!resolved.ok()) return resolved.status();
  Container& c = state_.containers.at(*resolved);
  exits_.RefreshLocked(c);
  return c;
}

absl::Status Containers::Signal(const std::string& id_or_prefix, int signal) {
  absl::StatusOr<std::pair<std::string, const Handler*>> running = RunningHandler(id_or_prefix);
  if (!running.ok()) return running.status();
  const auto& [id, handler] = *running;
  absl::Status signalled = handler->runtime.Kill(id, signal);
  // A frozen process gets its signal once thawed (docker kill of a paused container).
  if (signalled.ok() && Paused(id)) {
    (void)handler->runtime.Resume(id);
    MarkPaused(id, false);
  }
  // It may have ended between the look and the signal.
  if (absl::IsNotFound(signalled)) {
    return absl::FailedPreconditionError(absl::StrCat("container ", id, " is not running"));
  }
  return signalled;
}

absl::StatusOr<Container> Containers::WaitForExit(const std::string& id_or_prefix,
                                                  std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  std::unique_lock lock(state_.mutex);
  absl::StatusOr<std::string> resolved = state_.ResolveContainerIdLocked(id_or_prefix);
  if (!resolved.ok()) return resolved.status();
  for (;;) {
    auto found = state_.containers.find(*resolved);
    if (found == state_.containers.end()) {
      return absl::NotFoundError(absl::StrCat("container ", *resolved, " was removed"));
    }
    exits_.RefreshLocked(found->second);
    if (found->second.state == runtime::v1::CONTAINER_EXITED) return found->second;
    // The exit monitor notifies; the periodic look also catches a shim that died silently.
    auto wake = std::min(deadline, std::chrono::steady_clock::now() + std::chrono::seconds(1));
    state_.containers_changed.wait_until(lock, wake);
    if (std::chrono::steady_clock::now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("container ", *resolved, " is still running"));
    }
  }
}

absl::Status Containers::Recreate(const std::string& id_or_prefix) {
  Container c;
  Pod pod;
  const Handler* handler = nullptr;
  std::optional<NameReservation> reservation;
  {
    std::lock_guard lock(state_.mutex);
    absl::StatusOr<Container*> found = FindLocked(id_or_prefix);
    if (!found.ok()) return found.status();
    c = **found;
    if (c.state != runtime::v1::CONTAINER_EXITED) {
      return absl::FailedPreconditionError(absl::StrCat("container ", c.id, " is ",
                                                        ContainerStateName(c.state),
                                                        "; only an exited one can run "
                                                        "again"));
    }
    auto pod_found = state_.pods.find(c.pod_id);
    if (pod_found == state_.pods.end() || !pod_found->second.ready) {
      return absl::FailedPreconditionError(
          absl::StrCat("the pod sandbox of container ", c.id, " is not ready"));
    }
    pod = pod_found->second;
    absl::StatusOr<const Handler*> of = HandlerOfLocked(c);
    if (!of.ok()) return of.status();
    handler = *of;
    absl::StatusOr<NameReservation> taken = NameReservation::TakeLocked(
        state_, LifecycleKey(c.id),
        absl::StrCat("container ", c.id, " is being started, restarted or removed already"));
    if (!taken.ok()) return absl::FailedPreconditionError(taken.status().message());
    reservation.emplace(std::move(*taken));
  }
  // The runtime's record of the ended process and the old shim's exit record go first.
  if (absl::Status deleted = handler->runtime.Delete(c.id); !deleted.ok()) return deleted;
  ::unlink((c.bundle + "/" + shim::kExitFile).c_str());
  ::unlink((exits_.ExitDir() + "/" + c.id).c_str());
  absl::StatusOr<ShimProcess> shim = handler->runtime.Create(LaunchOf(c, pod));
  std::lock_guard lock(state_.mutex);
  auto found = state_.containers.find(c.id);
  if (found == state_.containers.end()) {
    return absl::NotFoundError(absl::StrCat("container ", c.id, " was removed meanwhile"));
  }
  Container& now = found->second;
  if (!shim.ok()) {
    now.reason = "StartError";
    now.message = std::string(shim.status().message());
    (void)records_.SaveContainer(now);
    return Annotate(shim.status(), "create container " + c.id + " again");
  }
  now.state = runtime::v1::CONTAINER_CREATED;
  now.shim_pid = shim->shim_pid;
  now.exit_code = 0;
  now.reason.clear();
  now.message.clear();
  now.started_at = 0;
  now.finished_at = 0;
  state_.containers_changed.notify_all();
  events_.PublishLocked(LifecycleChange::kCreated, now.id, now.pod_id);
  return records_.SaveContainer(now);
}

std::vector<Container> Containers::List(const std::string& pod_id) {
  std::lock_guard lock(state_.mutex);
  std::vector<Container> list;
  for (auto& [id, c] : state_.containers) {
    if (!pod_id.empty() && c.pod_id != pod_id) continue;
    exits_.RefreshLocked(c);
    list.push_back(c);
  }
  return list;
}
absl::Status Containers::SetAnnotations(const std::string& id_or_prefix,
                                        const std::map<std::string, std::string>& values) {
  std::lock_guard lock(state_.mutex);
  absl::StatusOr<Container*> found = FindLocked(id_or_prefix);
  if (!found.ok()) return found.status();
  Container changed = **found;
  auto& annotations = *changed.config.mutable_annotations();
  for (const auto& [key, value] : values) {
    if (value.empty()) {
      annotations.erase(key);
    } else {
      annotations[key] = value;
    }
  }
  // Stored first: the record in memory changes only once it is on disk.
  if (absl::Status saved = records_.SaveContainer(changed); !saved.ok()) return saved;
  **found = std::move(changed);
  return absl::OkStatus();
}

absl::Status Containers::UpdateResources(const std::string& id_or_prefix,
                                         const runtime::v1::LinuxContainerResources& update) {
  for (int64_t value : {update.cpu_period(), update.cpu_quota(), update.cpu_shares(),
                        update.memory_limit_in_bytes(), update.memory_swap_limit_in_bytes()}) {
    if (value < 0) return absl::InvalidArgumentError("resource values must not be negative");
  }
  if (!update.unified().empty() && !cgroups_.V2()) {
    return absl::FailedPreconditionError(
        "unified resources are cgroup v2 files; this host runs cgroup v1");
  }
  std::lock_guard lock(state_.mutex);
  absl::StatusOr<Container*> found = FindLocked(id_or_prefix);
  if (!found.ok()) return found.status();
  Container& c = **found;
  if (c.state != runtime::v1::CONTAINER_CREATED && c.state != runtime::v1::CONTAINER_RUNNING) {
    return absl::FailedPreconditionError(absl::StrCat(
        "container ", c.id, " is ", ContainerStateName(c.state), "; its resources are gone"));
  }
  absl::StatusOr<const Handler*> handler = HandlerOfLocked(c);
  if (!handler.ok()) return handler.status();
  // What is set replaces what was; what is not set stays, as in containerd.
  runtime::v1::LinuxContainerResources merged = c.config.linux().resources();
  if (update.cpu_period() > 0) merged.set_cpu_period(update.cpu_period());
  if (update.cpu_quota() > 0) merged.set_cpu_quota(update.cpu_quota());
  if (update.cpu_shares() > 0) merged.set_cpu_shares(update.cpu_shares());
  if (update.memory_limit_in_bytes() > 0) {
    merged.set_memory_limit_in_bytes(update.memory_limit_in_bytes());
  }
  if (update.memory_swap_limit_in_bytes() > 0) {
    merged.set_memory_swap_limit_in_bytes(update.memory_swap_limit_in_bytes());
  }
  if (!update.cpuset_cpus().empty()) merged.set_cpuset_cpus(update.cpuset_cpus());
  if (!update.cpuset_mems().empty()) merged.set_cpuset_mems(update.cpuset_mems());
  if (!update.hugepage_limits().empty())
    *merged.mutable_hugepage_limits() = update.hugepage_limits();
  for (const auto& [key, value] : update.unified()) (*merged.mutable_unified())[key] = value;

  nlohmann::json resources = CgroupResources(merged, cgroups_.Support());
  std::string path = c.bundle + "/resources.json";
  if (absl::Status written =
          base::WriteFileAtomically(path, resources.dump(), 0600, base::Durability::kVolatile);
      !written.ok()) {
    return written;
  }
  absl::Status updated = (*handler)->runtime.Update(c.id, path);
  ::unlink(path.c_str());
  if (!updated.ok()) return Annotate(updated, "update the resources of container " + c.id);
  // The bundle's spec says what the container has now (an exec reads it; so does a restart).
  if (absl::StatusOr<std::string> text = base::ReadFile(c.bundle + "/config.json"); text.ok()) {
    nlohmann::json spec = nlohmann::json::parse(*text, nullptr, false);
    if (spec.is_object()) {
      nlohmann::json devices = spec["linux"]["resources"].value("devices", nlohmann::json());
      spec["linux"]["resources"] = resources;
      if (!devices.is_null()) spec["linux"]["resources"]["devices"] = devices;
      (void)base::WriteFileAtomically(c.bundle + "/config.json", spec.dump(), 0600,
                                      base::Durability::kVolatile);
    }
  }
  *c.config.mutable_linux()->mutable_resources() = merged;
  return records_.SaveContainer(c);
}

}  // namespace kapal::runtime
