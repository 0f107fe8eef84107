#include "runtime/sandboxes.h"

#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <functional>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/crash_point.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "runtime/cni.h"
#include "runtime/exit_monitor.h"
#include "runtime/namespaces.h"
#include "runtime/oci_spec.h"
#include "runtime/userns.h"

namespace kapal::runtime {

namespace {

using runtime::v1::PodSandboxConfig;

// Sysctls a pod may set: only those of namespaces it has of its own (setting another would
// change the host).
absl::Status CheckSysctls(const PodSandboxConfig& config, const PodNamespaces& own) {
  for (const auto& [key, value] : config.linux().sysctls()) {
    bool ipc = absl::StartsWith(key, "kernel.shm") || absl::StartsWith(key, "kernel.msg") ||
               key == "kernel.sem" || absl::StartsWith(key, "fs.mqueue.");
    bool net = absl::StartsWith(key, "net.");
    bool uts = key == "kernel.hostname" || key == "kernel.domainname";
    if (!ipc && !net && !uts) {
      return absl::InvalidArgumentError(
          absl::StrCat("sysctl ", key,
                       " is not namespaced: a pod may only set net.*, kernel.shm*, "
                       "kernel.msg*, kernel.sem and fs.mqueue.*"));
    }
    if ((ipc && !own.ipc) || (net && !own.network) || (uts && !own.uts)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "sysctl ", key, " cannot be set in a pod that uses the host's namespace for it"));
    }
  }
  return absl::OkStatus();
}

std::string ResolvConf(const runtime::v1::DNSConfig& dns) {
  if (dns.servers().empty() && dns.searches().empty() && dns.options().empty()) {
    // No DNS config: the host's, as containerd does.
    absl::StatusOr<std::string> host = base::ReadFile("/etc/resolv.conf");
    return host.ok() ? *host : "";
  }
  std::string text;
  if (!dns.searches().empty())
    absl::StrAppend(&text, "search ", absl::StrJoin(dns.searches(), " "), "\n");
  for (const std::string& server : dns.servers())
    absl::StrAppend(&text, "nameserver ", server, "\n");
  if (!dns.options().empty())
    absl::StrAppend(&text, "options ", absl::StrJoin(dns.options(), " "), "\n");
  return text;
}

// Who a CNI call is for: the pod's ids, its network namespace pin and its host ports.
CniPod CniPodOf(const Pod& pod) {
  const auto& meta = pod.config.metadata();
  CniPod cni_pod{pod.id, pod.dir + "/net", meta.name(), meta.namespace_(), meta.uid(), {}};
  for (const runtime::v1::PortMapping& port : pod.config.port_mappings()) {
    if (port.host_port() == 0) continue;
    std::string protocol = absl::AsciiStrToLower(runtime::v1::Protocol_Name(port.protocol()));
    cni_pod.port_mappings.push_back(
        {port.host_port(), port.container_port(), protocol, port.host_ip()});
  }
  return cni_pod;
}

}  // namespace

Sandboxes::Sandboxes(const Options& options, const Cgroups& cgroups, NodeState& state,
                     RecordStore& records, const Handlers& handlers, Containers& containers,
                     PhaseMetrics& phases, NodeEvents& events, base::Logger& logger)
    : options_(options),
      cgroups_(cgroups),
      state_(state),
      records_(records),
      handlers_(handlers),
      containers_(containers),
      phases_(phases),
      events_(events),
      logger_(logger) {}

void Sandboxes::StopInfra(Pod& pod) {
  if (pod.infra_pid > 0 && InPinnedPidNamespace(pod.dir, pod.infra_pid)) {
    ::kill(pod.infra_pid, SIGKILL);
  }
  pod.infra_pid = 0;
  ::unlink((pod.dir + "/infra.pid").c_str());
}

void Sandboxes::CleanUpUnrecorded(const std::string& id) {
  Pod pod;
  pod.id = id;
  pod.dir = records_.PodDir(id);
  // The intent, written before anything else was made: who the pod was, for CNI's DEL.
  absl::StatusOr<std::string> intent = base::ReadFile(pod.dir + "/" + kIntentFile);
  bool known = intent.ok() && pod.config.ParseFromString(*intent);
  pod.own = OwnNamespaces(pod.config);
  // Its infra process may have started before its pid was written down; it names the pod dir.
  KillInfraOf(pod.dir);
  if (known && pod.own.network && NetworkNameOf(pod.config) != kNoNetwork) {
    absl::StatusOr<CniNetwork> network =
        CniNetwork::Load(options_.cni_conf_dir, options_.cni_bin_dirs, NetworkNameOf(pod.config));
    // DEL without the result of ADD: the IPAM plugin releases by container id and interface,
    // and the other plugins tolerate what is gone already.
    if (network.ok()) {
      if (absl::Status deleted = network->Del(CniPodOf(pod), nlohmann::json()); !deleted.ok()) {
        logger_.Warn("pod ", id, ": CNI DEL of a pod left by a crash: ", deleted.message());
      }
    }
  }
  (void)UnpinNamespaces(pod.dir);
  ::umount2((pod.dir + "/shm").c_str(), MNT_DETACH);
  if (known) cgroups_.RemovePodParent(pod);
  (void)base::RemoveTree(pod.dir);
}

absl::StatusOr<std::string> Sandboxes::Run(const PodSandboxConfig& config,
                                           const std::string& runtime_handler) {
  PhaseTimer timer(phases_, "run_pod");
  const auto& meta = config.metadata();
  std::vector<std::string> missing;
  if (meta.name().empty()) missing.push_back("name");
  if (meta.namespace_().empty()) missing.push_back("namespace");
  if (meta.uid().empty()) missing.push_back("uid");
  if (!missing.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("pod sandbox metadata has no ",
                                                   absl::StrJoin(missing, ", "),
                                                   "; name, namespace and uid are required"));
  }
  absl::StatusOr<const Handler*> handler = handlers_.Find(runtime_handler);
  if (!handler.ok()) return handler.status();
  PodNamespaces own = OwnNamespaces(config);
  if (absl::Status checked = CheckSysctls(config, own); !checked.ok()) return checked;
  absl::StatusOr<std::optional<IdMappings>> userns = PodUserNamespace(config);
  if (!userns.ok()) return userns.status();
  if (userns->has_value() && !(*handler)->features.user_namespaces) {
    return absl::FailedPreconditionError(absl::StrCat(
        "runtime handler \"", (*handler)->name,
        "\" cannot run pods in user namespaces here: this kernel cannot make idmapped mounts of "
        "the snapshots' filesystem or mount overlayfs on idmapped layers (Linux 5.19 on)"));
  }
  if (userns->has_value()) {
    if (absl::Status reachable = CheckSearchableByOthers(options_.state_dir + "/containers");
        !reachable.ok()) {
      return reachable;
    }
  }
  if (!config.log_directory().empty()) {
    if (absl::Status checked = CheckClientPath(config.log_directory(), "log_directory");
        !checked.ok()) {
      return checked;
    }
  }
  for (const runtime::v1::PortMapping& port : config.port_mappings()) {
    if (port.container_port() <= 0 || port.container_port() > 65535 || port.host_port() < 0 ||
        port.host_port() > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("port mapping ", port.host_port(), ":",
                                                     port.container_port(), " is out of range"));
    }
  }
  std::optional<CniNetwork> network;
  if (own.network && NetworkNameOf(config) != kNoNetwork) {
    absl::StatusOr<CniNetwork> loaded =
        CniNetwork::Load(options_.cni_conf_dir, options_.cni_bin_dirs, NetworkNameOf(config));
    if (!loaded.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("network not ready: ", loaded.status().message()));
    }
    network = std::move(*loaded);
  }

  // The name is reserved while the pod is made without the lock, so pods start in parallel.
  std::string full_name =
      absl::StrCat(meta.name(), "_", meta.namespace_(), "_", meta.uid(), "_", meta.attempt());
  std::optional<NameReservation> reservation;
  {
    std::lock_guard lock(state_.mutex);
    for (const auto& [id, pod] : state_.pods) {
      const auto& other = pod.config.metadata();
      if (other.name() == meta.name() && other.namespace_() == meta.namespace_() &&
          other.uid() == meta.uid() && other.attempt() == meta.attempt()) {
        return absl::AlreadyExistsError(absl::StrCat(
            "pod sandbox name ", full_name, " is already used by ", id, "; remove that pod first"));
      }
    }
    absl::StatusOr<NameReservation> taken =
        NameReservation::TakeLocked(state_, "pod/" + full_name,
                                    absl::StrCat("pod sandbox name ", full_name,
                                                 " is being used by a RunPodSandbox in progress"));
    if (!taken.ok()) return taken.status();
    reservation.emplace(std::move(*taken));
  }
  timer.Mark("checks");
  Pod pod;
  pod.id = NewId();
  pod.config = config;
  pod.runtime_handler = (*handler)->name;
  pod.created_at = NowNanos();
  pod.dir = records_.PodDir(pod.id);
  pod.own = own;

  // Undo everything done so far when a later step fails: nothing is left of a failed pod.
  bool done = false;
  std::optional<CniPod> networked;
  struct Undo {
    std::function<void()> fn;
    ~Undo() { fn(); }
  } undo{[&] {
    if (done) return;
    if (networked.has_value()) (void)network->Del(*networked, pod.cni_result);
    StopInfra(pod);
    (void)UnpinNamespaces(pod.dir);
    ::umount2((pod.dir + "/shm").c_str(), MNT_DETACH);
    (void)base::RemoveTree(pod.dir);
  }};

  if (absl::Status made = base::MakeDirectories(pod.dir, 0711); !made.ok()) return made;
  // Written first: if kapald dies before the record, the next start knows whose network,
  // infra process and cgroup these are (CleanUpUnrecorded).
  if (absl::Status written =
          base::WriteFileAtomically(pod.dir + "/" + kIntentFile, config.SerializeAsString(), 0600,
                                    base::Durability::kVolatile);
      !written.ok()) {
    return written;
  }
  std::string hostname = config.hostname();
  if (!own.uts) {
    char host_name[256] = {};
    ::gethostname(host_name, sizeof host_name - 1);
    hostname = host_name;
  } else if (hostname.empty()) {
    hostname = meta.name().substr(0, 63);
  }
  std::string hosts = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n";
  for (auto [name, content] : std::vector<std::pair<std::string, std::string>>{
           {"hostname", hostname + "\n"},
           {"hosts", hosts},
           {"resolv.conf", ResolvConf(config.dns_config())}}) {
    if (absl::Status written = base::WriteFileAtomically(pod.dir + "/" + name, content, 0644,
                                                         base::Durability::kVolatile);
        !written.ok()) {
      return written;
    }
  }
  if (own.ipc) {
    std::string shm = pod.dir + "/shm";
    if (absl::Status made = base::MakeDirectories(shm, 01777); !made.ok()) return made;
    if (::mount("shm", shm.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                "mode=1777,size=65536k") != 0) {
      return base::ErrnoStatus(errno, "mount /dev/shm of the pod at " + shm);
    }
  }
  timer.Mark("files");
  if (userns->has_value()) {
    OwnedNamespaces owned{own.network, own.ipc, own.uts, hostname};
    if (absl::Status pinned = PinUserNamespaces(handlers_.ShimBinary(), pod.dir, **userns, owned);
        !pinned.ok()) {
      return pinned;
    }
  } else if (absl::Status pinned = PinNamespaces(pod.dir, own, hostname); !pinned.ok()) {
    return pinned;
  }
  timer.Mark("namespaces");
  base::CrashPoint("runpod-after-namespaces");
  if (own.pid) {
    absl::StatusOr<int> infra = StartPodInfra(handlers_.ShimBinary(), pod.dir);
    if (!infra.ok()) return Annotate(infra.status(), "start the pod's infra process");
    pod.infra_pid = *infra;
    if (absl::Status pinned = PinPidNamespace(pod.dir, pod.infra_pid); !pinned.ok()) {
      // Not pinned, so StopInfra could not tell it is ours; it was started a moment ago.
      ::kill(pod.infra_pid, SIGKILL);
      pod.infra_pid = 0;
      return pinned;
    }
    if (absl::Status written =
            base::WriteFileAtomically(pod.dir + "/infra.pid", std::to_string(pod.infra_pid), 0600,
                                      base::Durability::kVolatile);
        !written.ok()) {
      return written;
    }
    timer.Mark("infra");
    base::CrashPoint("runpod-after-infra");
  }

  if (network.has_value()) {
    CniPod cni_pod = CniPodOf(pod);
    absl::StatusOr<nlohmann::json> result = network->Add(cni_pod);
    if (!result.ok()) return Annotate(result.status(), "set up the pod's network");
    networked = cni_pod;
    pod.cni_result = *result;
    pod.ips = CniNetwork::Addresses(*result);
    timer.Mark("cni_add");
    base::CrashPoint("runpod-after-cni-add");
  }
  pod.ready = true;
  base::CrashPoint("runpod-before-record");
  if (absl::Status saved = records_.SavePod(pod); !saved.ok()) return saved;
  timer.Mark("record");
  done = true;
  std::string id = pod.id;
  std::lock_guard lock(state_.mutex);
  state_.pods[id] = std::move(pod);
  // As containerd: the pod's own events carry its id as the container's.
  events_.PublishLocked(LifecycleChange::kCreated, id, id);
  events_.PublishLocked(LifecycleChange::kStarted, id, id);
  logger_.Info("pod ", meta.namespace_(), "/", meta.name(), " runs as ", id);
  logger_.Debug("pod ", id, " made in ", timer.Summary());
  return id;
}

absl::Status Sandboxes::Stop(const std::string& id_or_prefix) {
  PhaseTimer timer(phases_, "stop_pod");
  std::vector<std::string> to_stop;
  std::string id;
  Pod infra;
  bool all_in_pod_pid_namespace = true;
  std::vector<std::string> bundles;  // of the containers that still run
  {
    std::lock_guard lock(state_.mutex);
    absl::StatusOr<std::optional<std::string>> existing = state_.ExistingPodIdLocked(id_or_prefix);
    if (!existing.ok()) return existing.status();
    if (!existing->has_value()) return absl::OkStatus();
    id = **existing;
    for (const auto& [cid, c] : state_.containers) {
      if (c.pod_id == id) to_stop.push_back(cid);
    }
    infra = state_.pods.at(id);
    for (const std::string& cid : to_stop) {
      const Container& c = state_.containers.at(cid);
      if (c.state == runtime::v1::CONTAINER_EXITED || c.state == runtime::v1::CONTAINER_UNKNOWN) {
        continue;
      }
      if (c.config.linux().security_context().namespace_options().pid() != runtime::v1::POD) {
        all_in_pod_pid_namespace = false;
      }
      bundles.push_back(c.bundle);
    }
  }
  // StopPodSandbox ends its containers at once (no grace period). When all that still run are
  // in the pod's PID namespace, the end of the namespace's init (the infra process) makes the
  // kernel SIGKILL every one of them, so no `runc kill` needs to run for each; their exits are
  // recorded by their shims as ever, and a container that has not ended after a while is
  // killed by its Stop below.
  if (all_in_pod_pid_namespace && !bundles.empty() && infra.own.pid && infra.infra_pid > 0) {
    StopInfra(infra);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    for (const std::string& bundle : bundles) {
      (void)AwaitExitRecord(bundle, std::chrono::duration_cast<std::chrono::milliseconds>(
                                        deadline - std::chrono::steady_clock::now()));
    }
  }
  timer.Mark("pid_namespace");
  for (const std::string& cid : to_stop) {
    if (absl::Status stopped = containers_.Stop(cid, std::chrono::seconds(0)); !stopped.ok()) {
      return Annotate(stopped, "stop container " + cid);
    }
  }
  timer.Mark("containers");
  // The pod is marked not ready under the node lock (no new container can join it); the slow
  // part, ending its infra and the CNI DEL (plugin processes), runs on a copy without the lock,
  // so that other pods' calls do not wait for it. Both are idempotent, so two stops of one pod
  // at once are harmless.
  Pod pod;
  {
    std::lock_guard lock(state_.mutex);
    auto found = state_.pods.find(id);
    if (found == state_.pods.end()) return absl::OkStatus();
    if (found->second.ready) {
      found->second.ready = false;
      events_.PublishLocked(LifecycleChange::kStopped, id, id);
    }
    pod = found->second;
  }
  StopInfra(pod);
  timer.Mark("infra");
  if (!pod.cni_result.is_null() && pod.own.network) {
    absl::StatusOr<CniNetwork> network =
        CniNetwork::Load(options_.cni_conf_dir, options_.cni_bin_dirs, NetworkNameOf(pod.config));
    CniPod cni_pod = CniPodOf(pod);
    if (network.ok()) {
      if (absl::Status deleted = network->Del(cni_pod, pod.cni_result); !deleted.ok()) {
        return Annotate(deleted, "tear down the pod's network");
      }
    } else {
      logger_.Warn("pod ", id,
                   ": no CNI config to tear its network down: ", network.status().message());
    }
    timer.Mark("cni_del");
  }
  std::lock_guard lock(state_.mutex);
  auto found = state_.pods.find(id);
  if (found == state_.pods.end()) return absl::OkStatus();  // removed meanwhile
  found->second.infra_pid = 0;
  if (pod.own.network) found->second.cni_result = nlohmann::json();
  found->second.ready = false;
  absl::Status saved = records_.SavePod(found->second);
  timer.Mark("record");
  return saved;
}

absl::Status Sandboxes::Remove(const std::string& id_or_prefix) {
  PhaseTimer timer(phases_, "remove_pod");
  std::vector<std::string> to_remove;
  std::string id;
  {
    std::lock_guard lock(state_.mutex);
    absl::StatusOr<std::optional<std::string>> existing = state_.ExistingPodIdLocked(id_or_prefix);
    if (!existing.ok()) return existing.status();
    if (!existing->has_value()) return absl::OkStatus();
    id = **existing;
  }
  // A pod still ready is stopped first (containerd refuses instead; kubelet always stops
  // first, and crictl rmp -f would do the same).
  if (absl::Status stopped = Stop(id); !stopped.ok()) return stopped;
  timer.Mark("stop");
  {
    std::lock_guard lock(state_.mutex);
    for (const auto& [cid, c] : state_.containers) {
      if (c.pod_id == id) to_remove.push_back(cid);
    }
  }
  for (const std::string& cid : to_remove) {
    if (absl::Status removed = containers_.Remove(cid); !removed.ok()) return removed;
  }
  timer.Mark("containers");
  // Unmounts, the pod's files and cgroup go without the node lock (other pods' calls need it);
  // each step is idempotent, so a second remove of the same pod at once is harmless.
  Pod pod;
  {
    std::lock_guard lock(state_.mutex);
    auto found = state_.pods.find(id);
    if (found == state_.pods.end()) return absl::OkStatus();
    pod = found->second;
  }
  if (absl::Status unpinned = UnpinNamespaces(pod.dir); !unpinned.ok()) return unpinned;
  if (::umount2((pod.dir + "/shm").c_str(), MNT_DETACH) != 0 && errno != EINVAL &&
      errno != ENOENT) {
    return base::ErrnoStatus(errno, "umount " + pod.dir + "/shm");
  }
  if (absl::Status removed = base::RemoveTree(pod.dir); !removed.ok()) return removed;
  cgroups_.RemovePodParent(pod);
  timer.Mark("files");
  std::lock_guard lock(state_.mutex);
  auto found = state_.pods.find(id);
  if (found == state_.pods.end()) return absl::OkStatus();  // the other remove was first
  if (absl::Status deleted = records_.DeletePod(id); !deleted.ok()) return deleted;
  // Sent while the record is still there: the event carries the pod's last status (kubelet
  // needs its metadata to know whose entry to drop).
  events_.PublishLocked(LifecycleChange::kDeleted, id, id);
  state_.pods.erase(found);
  timer.Mark("record");
  logger_.Info("pod ", id, " removed");
  return absl::OkStatus();
}

absl::StatusOr<Pod> Sandboxes::Get(const std::string& id) {
  std::lock_guard lock(state_.mutex);
  absl::StatusOr<std::string> resolved = state_.ResolvePodIdLocked(id);
  if (!resolved.ok()) return resolved.status();
  return state_.pods.at(*resolved);
}

std::vector<Pod> Sandboxes::List() {
  std::lock_guard lock(state_.mutex);
  std::vector<Pod> pods;
  for (const auto& [id, pod] : state_.pods) pods.push_back(pod);
  return pods;
}

namespace {

// What is set in UPDATE replaces what was in CURRENT (containerd's rule for updates too).
void MergeResources(const runtime::v1::LinuxContainerResources& update,
                    runtime::v1::LinuxContainerResources& current) {
  if (update.cpu_period() > 0) current.set_cpu_period(update.cpu_period());
  if (update.cpu_quota() > 0) current.set_cpu_quota(update.cpu_quota());
  if (update.cpu_shares() > 0) current.set_cpu_shares(update.cpu_shares());
  if (update.memory_limit_in_bytes() > 0) {
    current.set_memory_limit_in_bytes(update.memory_limit_in_bytes());
  }
  if (!update.cpuset_cpus().empty()) current.set_cpuset_cpus(update.cpuset_cpus());
  if (!update.cpuset_mems().empty()) current.set_cpuset_mems(update.cpuset_mems());
}

}  // namespace

absl::Status Sandboxes::UpdateResources(const std::string& id_or_prefix,
                                        const runtime::v1::LinuxContainerResources& overhead,
                                        const runtime::v1::LinuxContainerResources& resources) {
  for (const runtime::v1::LinuxContainerResources* given : {&overhead, &resources}) {
    for (int64_t value : {given->cpu_period(), given->cpu_quota(), given->cpu_shares(),
                          given->memory_limit_in_bytes()}) {
      if (value < 0) return absl::InvalidArgumentError("resource values must not be negative");
    }
  }
  std::lock_guard lock(state_.mutex);
  absl::StatusOr<std::string> resolved = state_.ResolvePodIdLocked(id_or_prefix);
  if (!resolved.ok()) return resolved.status();
  Pod& pod = state_.pods.at(*resolved);
  if (!pod.ready) {
    return absl::FailedPreconditionError(
        absl::StrCat("pod sandbox ", pod.id, " is stopped; its resources cannot change"));
  }
  Pod updated = pod;
  runtime::v1::LinuxPodSandboxConfig& linux = *updated.config.mutable_linux();
  MergeResources(overhead, *linux.mutable_overhead());
  MergeResources(resources, *linux.mutable_resources());
  // The pod's limit is its containers' plus the overhead (as kubelet sizes its pod cgroups).
  runtime::v1::LinuxContainerResources total = linux.resources();
  const runtime::v1::LinuxContainerResources& extra = linux.overhead();
  int64_t period = total.cpu_period() > 0 ? total.cpu_period() : 100000;
  if (total.cpu_quota() > 0 && extra.cpu_quota() > 0) {
    int64_t extra_period = extra.cpu_period() > 0 ? extra.cpu_period() : 100000;
    total.set_cpu_period(period);
    total.set_cpu_quota(total.cpu_quota() + extra.cpu_quota() * period / extra_period);
  }
  if (total.cpu_shares() > 0) total.set_cpu_shares(total.cpu_shares() + extra.cpu_shares());
  if (total.memory_limit_in_bytes() > 0) {
    total.set_memory_limit_in_bytes(total.memory_limit_in_bytes() + extra.memory_limit_in_bytes());
  }
  if (absl::Status applied = cgroups_.ApplyPodLimits(updated, total); !applied.ok()) {
    return Annotate(applied, "resize pod sandbox " + pod.id);
  }
  if (absl::Status saved = records_.SavePod(updated); !saved.ok()) return saved;
  pod = std::move(updated);
  logger_.Info("pod ", pod.id, " resized");
  return absl::OkStatus();
}

}  // namespace kapal::runtime
