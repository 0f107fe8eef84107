#include "cri/pod_runtime.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "base/unique_fd.h"
#include "cri/cni.h"
#include "cri/oci_runtime.h"
#include "cri/oci_spec.h"
#include "images/garbage.h"
#include "shim/exit_file.h"
#include "snapshotter/mount.h"

namespace kapal::cri {

namespace {

using runtime::v1::ContainerConfig;
using runtime::v1::PodSandboxConfig;

constexpr char kContainerSnapshotPrefix[] = "container-";
// After the stop signal's grace period, SIGKILL; this long more for the exit to be recorded.
constexpr std::chrono::seconds kKillWait(10);

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string NewId() {
  std::random_device random;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 64; ++i) id += kHex[random() % 16];
  return id;
}

std::string ContainerStateName(runtime::v1::ContainerState state) {
  return runtime::v1::ContainerState_Name(state);
}

absl::StatusOr<runtime::v1::ContainerState> ParseContainerState(const std::string& name) {
  runtime::v1::ContainerState state;
  if (!runtime::v1::ContainerState_Parse(name, &state)) {
    return absl::DataLossError(absl::StrCat("unknown container state \"", name, "\" in store"));
  }
  return state;
}

// The namespaces a pod config asks to be the pod's own (NODE means the host's).
PodNamespaces OwnNamespaces(const PodSandboxConfig& config) {
  const auto& options = config.linux().security_context().namespace_options();
  PodNamespaces own;
  own.network = options.network() != runtime::v1::NODE;
  own.ipc = options.ipc() != runtime::v1::NODE;
  // A pod on the host's network has the host's name too, as in Kubernetes.
  own.uts = own.network;
  own.pid = options.pid() == runtime::v1::POD;
  return own;
}

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

// The process user of the container's config.json; nullopt when the bundle is gone.
std::optional<ProcessUser> SpecUser(const std::string& bundle) {
  absl::StatusOr<std::string> text = base::ReadFile(bundle + "/config.json");
  if (!text.ok()) return std::nullopt;
  nlohmann::json spec = nlohmann::json::parse(*text, nullptr, false);
  if (!spec.is_object() || !spec.contains("process") || !spec["process"].contains("user")) {
    return std::nullopt;
  }
  const nlohmann::json& user = spec["process"]["user"];
  ProcessUser parsed;
  parsed.uid = user.value("uid", 0u);
  parsed.gid = user.value("gid", 0u);
  if (user.contains("additionalGids") && user["additionalGids"].is_array()) {
    parsed.additional_gids = user["additionalGids"].get<std::vector<uint32_t>>();
  }
  return parsed;
}

bool ProcessAlive(int pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

// The shim's pid may be reused after a reboot; only a kapal-shim for this bundle counts.
bool ShimAlive(int pid, const std::string& bundle) {
  if (!ProcessAlive(pid)) return false;
  absl::StatusOr<std::string> cmdline = base::ReadFile(absl::StrCat("/proc/", pid, "/cmdline"));
  return cmdline.ok() && cmdline->find("kapal-shim") != std::string::npos &&
         cmdline->find(bundle) != std::string::npos;
}

// Sends one line to the shim's control socket and returns its answer.
absl::StatusOr<std::string> AskShim(const std::string& bundle, const std::string& command) {
  // The bundle path may be longer than a socket address allows; reach it through an fd.
  base::UniqueFd dir(::open(bundle.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return base::ErrnoStatus(errno, "open " + bundle);
  std::string path = absl::StrCat("/proc/self/fd/", dir.Get(), "/", shim::kControlSocket);
  base::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return base::ErrnoStatus(errno, "socket");
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  if (::connect(fd.Get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("the container's shim does not answer: ", std::strerror(errno)));
  }
  timeval timeout{10, 0};
  ::setsockopt(fd.Get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  std::string line = command + "\n";
  if (::write(fd.Get(), line.data(), line.size()) < 0) return base::ErrnoStatus(errno, "write");
  char buffer[512];
  ssize_t n = ::read(fd.Get(), buffer, sizeof buffer);
  if (n <= 0) return absl::UnavailableError("the container's shim gave no answer");
  std::string answer(buffer, static_cast<size_t>(n));
  while (!answer.empty() && answer.back() == '\n') answer.pop_back();
  return answer;
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

absl::Status Annotate(const absl::Status& status, absl::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

}  // namespace

int ParseSignal(const std::string& text) {
  static const std::map<std::string, int> kNames = {
      {"HUP", SIGHUP},   {"INT", SIGINT},     {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
      {"USR1", SIGUSR1}, {"USR2", SIGUSR2},   {"TERM", SIGTERM}, {"STOP", SIGSTOP},
      {"CONT", SIGCONT}, {"WINCH", SIGWINCH}, {"PWR", SIGPWR},   {"ABRT", SIGABRT},
      {"ALRM", SIGALRM}};
  std::string name = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(text));
  int number = 0;
  if (absl::SimpleAtoi(name, &number)) return number > 0 && number < 65 ? number : 0;
  if (absl::StartsWith(name, "SIG")) name = name.substr(3);
  auto found = kNames.find(name);
  return found == kNames.end() ? 0 : found->second;
}

struct PodRuntime::Handler {
  std::string name;
  OciRuntime runtime;
};

PodRuntime::PodRuntime(const Config& config, const HostFacts& host, store::Store& store,
                       images::ImageStore& images, snapshotter::Snapshotter& snapshots,
                       base::Logger& logger)
    : config_(config),
      host_(host),
      store_(store),
      images_(images),
      snapshots_(snapshots),
      logger_(logger),
      exit_dir_(config.state_dir + "/exits") {
  // kapal-shim is installed next to kapald (the build puts both in one directory).
  char self[4096] = {};
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  std::string dir = n > 0 ? std::string(self, static_cast<size_t>(n)) : "";
  dir = dir.substr(0, dir.rfind('/'));
  shim_binary_ = config.shim_binary.empty() ? dir + "/kapal-shim" : config.shim_binary;
  bool systemd = ResolveCgroupDriver(config.cgroup_driver, host) == CgroupDriver::kSystemd;
  for (const auto& [name, handler] : config.runtimes) {
    absl::StatusOr<std::string> binary = base::FindExecutable(handler.binary);
    handlers_[name] = std::make_unique<Handler>(
        Handler{name, OciRuntime(binary.ok() ? *binary : handler.binary,
                                 absl::StrCat(config.state_dir, "/runtime/", name), systemd)});
  }
  // Without CAP_SYS_RESOURCE the runtime cannot lower oom_score_adj below its own.
  absl::StatusOr<std::string> status = base::ReadFile("/proc/self/status");
  bool sys_resource = true;
  if (status.ok()) {
    size_t at = status->find("CapEff:\t");
    if (at != std::string::npos) {
      uint64_t caps = std::strtoull(status->c_str() + at + 8, nullptr, 16);
      sys_resource = (caps >> 24) & 1;  // CAP_SYS_RESOURCE is capability 24
    }
  }
  if (!sys_resource) {
    absl::StatusOr<std::string> own = base::ReadFile("/proc/self/oom_score_adj");
    int value = 0;
    if (own.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(*own), &value)) {
      min_oom_score_adj_ = value;
    }
  }
}

PodRuntime::~PodRuntime() {
  if (exit_watcher_.joinable()) {
    uint64_t one = 1;
    (void)!::write(stop_watch_.Get(), &one, sizeof one);
    exit_watcher_.join();
  }
}

absl::Status PodRuntime::StartExitWatcher() {
  exit_watch_.Reset(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  if (!exit_watch_) return base::ErrnoStatus(errno, "inotify_init1");
  if (::inotify_add_watch(exit_watch_.Get(), exit_dir_.c_str(), IN_CREATE | IN_MOVED_TO) < 0) {
    return base::ErrnoStatus(errno, "watch " + exit_dir_);
  }
  stop_watch_.Reset(::eventfd(0, EFD_CLOEXEC));
  if (!stop_watch_) return base::ErrnoStatus(errno, "eventfd");
  RecordExitsNoted();  // those noted before the watch began
  exit_watcher_ = std::thread([this] { WatchExits(); });
  return absl::OkStatus();
}

void PodRuntime::WatchExits() {
  char buffer[4096];
  for (;;) {
    pollfd fds[2] = {{exit_watch_.Get(), POLLIN, 0}, {stop_watch_.Get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    while (::read(exit_watch_.Get(), buffer, sizeof buffer) > 0) {
    }
    RecordExitsNoted();
  }
}

void PodRuntime::RecordExitsNoted() {
  absl::StatusOr<std::vector<std::string>> noted = base::ListDirectory(exit_dir_);
  if (!noted.ok()) return;
  std::lock_guard lock(mutex_);
  for (const std::string& id : *noted) {
    auto found = containers_.find(id);
    // A container still being created is not in the map yet; its note waits for the next
    // event or for a client's question (which reads the bundle's record either way).
    if (found == containers_.end() && reserved_names_.empty()) {
      ::unlink((exit_dir_ + "/" + id).c_str());
      continue;
    }
    if (found == containers_.end()) continue;
    RefreshLocked(found->second);
    if (found->second.state == runtime::v1::CONTAINER_EXITED) {
      ::unlink((exit_dir_ + "/" + id).c_str());
    }
  }
}

nlohmann::json PodRuntime::Describe() const {
  nlohmann::json handlers = nlohmann::json::object();
  for (const auto& [name, handler] : handlers_) {
    const std::string& binary = handler->runtime.Binary();
    handlers[name] = {{"binary", binary}};
    // Known on hosts like this one: crun 1.8 refuses cgroup v1 "hybrid" layouts at create.
    if (absl::EndsWith(binary, "/crun") && host_.cgroup_layout == CgroupLayout::kHybrid) {
      handlers[name]["warning"] =
          "crun may refuse this host's cgroup v1 hybrid layout (\"cgroups in hybrid mode not "
          "supported\"); use runc here";
    }
  }
  return {{"shim", shim_binary_},
          {"handlers", handlers},
          {"min_oom_score_adj", min_oom_score_adj_},
          {"oom_score_adj_restricted", min_oom_score_adj_ > -1000}};
}

absl::StatusOr<const PodRuntime::Handler*> PodRuntime::HandlerOfLocked(const Container& c) const {
  auto pod = pods_.find(c.pod_id);
  return HandlerFor(pod != pods_.end() ? pod->second.runtime_handler : "");
}

absl::StatusOr<Container*> PodRuntime::FindContainerLocked(const std::string& id_or_prefix) {
  absl::StatusOr<std::string> resolved = ResolveContainerId(id_or_prefix);
  if (!resolved.ok()) return resolved.status();
  Container& c = containers_.at(*resolved);
  RefreshLocked(c);
  return &c;
}

absl::StatusOr<const PodRuntime::Handler*> PodRuntime::HandlerFor(const std::string& name) const {
  const std::string& wanted = name.empty() ? config_.default_runtime : name;
  auto found = handlers_.find(wanted);
  if (found == handlers_.end()) {
    std::vector<std::string> names;
    for (const auto& [known, handler] : handlers_) names.push_back(known);
    return absl::NotFoundError(absl::StrCat("no runtime handler \"", wanted, "\"; kapald has ",
                                            absl::StrJoin(names, ", ")));
  }
  return found->second.get();
}

absl::Status PodRuntime::SavePodRecord(const Pod& pod) {
  return store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement row(db,
                          "INSERT OR REPLACE INTO pods(id, name, namespace, uid, attempt, state, "
                          "runtime_handler, netns_path, ips, config, created_at, cni_result) "
                          "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)");
    const auto& meta = pod.config.metadata();
    row.bind(1, pod.id);
    row.bind(2, meta.name());
    row.bind(3, meta.namespace_());
    row.bind(4, meta.uid());
    row.bind(5, static_cast<int64_t>(meta.attempt()));
    row.bind(6, pod.ready ? "SANDBOX_READY" : "SANDBOX_NOTREADY");
    row.bind(7, pod.runtime_handler);
    row.bind(8, pod.own.network ? pod.dir + "/net" : "");
    row.bind(9, nlohmann::json(pod.ips).dump());
    std::string blob = pod.config.SerializeAsString();
    row.bind(10, blob.data(), static_cast<int>(blob.size()));
    row.bind(11, pod.created_at);
    row.bind(12, pod.cni_result.is_null() ? "" : pod.cni_result.dump());
    row.exec();
  });
}

absl::Status PodRuntime::SaveContainerRecord(const Container& c) {
  return store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement row(
        db,
        "INSERT OR REPLACE INTO containers(id, pod_id, name, attempt, image_id, image_ref, state, "
        "snapshot_key, log_path, shim_pid, exit_code, reason, message, config, created_at, "
        "started_at, finished_at, stop_signal) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    row.bind(1, c.id);
    row.bind(2, c.pod_id);
    row.bind(3, c.config.metadata().name());
    row.bind(4, static_cast<int64_t>(c.config.metadata().attempt()));
    row.bind(5, c.image_id);
    row.bind(6, c.image_ref);
    row.bind(7, ContainerStateName(c.state));
    row.bind(8, c.snapshot_key);
    row.bind(9, c.log_path);
    row.bind(10, c.shim_pid);
    row.bind(11, c.exit_code);
    row.bind(12, c.reason);
    row.bind(13, c.message);
    std::string blob = c.config.SerializeAsString();
    row.bind(14, blob.data(), static_cast<int>(blob.size()));
    row.bind(15, c.created_at);
    row.bind(16, c.started_at);
    row.bind(17, c.finished_at);
    row.bind(18, c.stop_signal);
    row.exec();
  });
}

absl::Status PodRuntime::Recover() {
  std::lock_guard lock(mutex_);
  std::vector<Pod> pods;
  std::vector<Container> containers;
  absl::Status read = store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement pod_rows(
        db, "SELECT id, state, runtime_handler, ips, config, created_at, cni_result FROM pods");
    while (pod_rows.executeStep()) {
      Pod pod;
      pod.id = pod_rows.getColumn(0).getString();
      pod.ready = pod_rows.getColumn(1).getString() == "SANDBOX_READY";
      pod.runtime_handler = pod_rows.getColumn(2).getString();
      nlohmann::json ips = nlohmann::json::parse(pod_rows.getColumn(3).getString(), nullptr, false);
      if (ips.is_array()) pod.ips = ips.get<std::vector<std::string>>();
      SQLite::Column blob = pod_rows.getColumn(4);
      pod.config.ParseFromArray(blob.getBlob(), blob.getBytes());
      pod.created_at = pod_rows.getColumn(5).getInt64();
      std::string cni = pod_rows.getColumn(6).getString();
      if (!cni.empty()) pod.cni_result = nlohmann::json::parse(cni, nullptr, false);
      pod.dir = absl::StrCat(config_.state_dir, "/pods/", pod.id);
      pod.own = OwnNamespaces(pod.config);
      if (absl::StatusOr<std::string> infra = base::ReadFile(pod.dir + "/infra.pid"); infra.ok()) {
        (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(*infra), &pod.infra_pid);
      }
      pods.push_back(std::move(pod));
    }
    SQLite::Statement rows(db,
                           "SELECT id, pod_id, image_id, image_ref, state, snapshot_key, log_path, "
                           "shim_pid, exit_code, reason, message, config, created_at, started_at, "
                           "finished_at, stop_signal FROM containers");
    while (rows.executeStep()) {
      Container c;
      c.id = rows.getColumn(0).getString();
      c.pod_id = rows.getColumn(1).getString();
      c.image_id = rows.getColumn(2).getString();
      c.image_ref = rows.getColumn(3).getString();
      absl::StatusOr<runtime::v1::ContainerState> state =
          ParseContainerState(rows.getColumn(4).getString());
      c.state = state.ok() ? *state : runtime::v1::CONTAINER_UNKNOWN;
      c.snapshot_key = rows.getColumn(5).getString();
      c.log_path = rows.getColumn(6).getString();
      c.shim_pid = rows.getColumn(7).getInt();
      c.exit_code = rows.getColumn(8).getInt();
      c.reason = rows.getColumn(9).getString();
      c.message = rows.getColumn(10).getString();
      SQLite::Column blob = rows.getColumn(11);
      c.config.ParseFromArray(blob.getBlob(), blob.getBytes());
      c.created_at = rows.getColumn(12).getInt64();
      c.started_at = rows.getColumn(13).getInt64();
      c.finished_at = rows.getColumn(14).getInt64();
      c.stop_signal = rows.getColumn(15).getInt();
      c.bundle = absl::StrCat(config_.state_dir, "/containers/", c.id);
      containers.push_back(std::move(c));
    }
  });
  if (!read.ok()) return read;
  for (Pod& pod : pods) {
    // A reboot (or a state dir on tmpfs that was emptied) takes the namespaces with it.
    if (pod.ready && pod.own.network && !IsMountPoint(pod.dir + "/net")) {
      logger_.Warn("pod ", pod.id, ": its network namespace is gone; marking it not ready");
      pod.ready = false;
      if (absl::Status saved = SavePodRecord(pod); !saved.ok()) return saved;
    }
    pods_[pod.id] = std::move(pod);
  }
  for (Container& c : containers) {
    if (c.shim_pid == 0) {
      absl::StatusOr<std::string> shim_pid = base::ReadFile(c.bundle + "/" + shim::kShimPidFile);
      if (!shim_pid.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*shim_pid), &c.shim_pid)) {
        // kapald died before the shim started: CreateContainer never answered; undo it.
        logger_.Warn("container ", c.id, ": its creation was cut short; removing it");
        if (absl::Status cleaned = CleanUpContainerLocked(c); !cleaned.ok()) return cleaned;
        absl::Status deleted = store_.WithDatabase([&](SQLite::Database& db) {
          SQLite::Statement row(db, "DELETE FROM containers WHERE id = ?");
          row.bind(1, c.id);
          row.exec();
        });
        if (!deleted.ok()) return deleted;
        continue;
      }
    }
    c.user = SpecUser(c.bundle);
    RefreshLocked(c);
    containers_[c.id] = std::move(c);
  }
  // A crash between creating a pod's or container's files and recording it leaves files no
  // record names: remove them.
  for (const char* kind : {"pods", "containers"}) {
    std::string dir = absl::StrCat(config_.state_dir, "/", kind);
    absl::StatusOr<std::vector<std::string>> entries = base::ListDirectory(dir);
    if (!entries.ok()) continue;
    for (const std::string& name : *entries) {
      bool known =
          std::string(kind) == "pods" ? pods_.count(name) > 0 : containers_.count(name) > 0;
      if (known) continue;
      std::string path = absl::StrCat(dir, "/", name);
      logger_.Warn("removing ", path, ": left by a crash, no record names it");
      if (std::string(kind) == "pods") {
        (void)UnpinNamespaces(path);
        ::umount2((path + "/shm").c_str(), MNT_DETACH);
      } else {
        for (const auto& [handler_name, handler] : handlers_) (void)handler->runtime.Delete(name);
        ::umount2((path + "/rootfs").c_str(), MNT_DETACH);
        (void)snapshots_.Remove(kContainerSnapshotPrefix + name);
      }
      (void)base::RemoveTree(path);
    }
  }
  logger_.Info("recovered ", pods_.size(), " pods and ", containers_.size(), " containers");
  return absl::OkStatus();
}

void PodRuntime::RefreshLocked(Container& c) {
  if (c.state != runtime::v1::CONTAINER_RUNNING && c.state != runtime::v1::CONTAINER_CREATED) {
    return;
  }
  if (c.shim_pid == 0) return;  // being created
  auto read_record = [&]() -> std::optional<shim::ExitRecord> {
    absl::StatusOr<std::string> text = base::ReadFile(c.bundle + "/" + shim::kExitFile);
    return text.ok() ? shim::ParseExitRecord(*text) : std::nullopt;
  };
  std::optional<shim::ExitRecord> record = read_record();
  bool shim_gone = false;
  if (!record.has_value() && !ShimAlive(c.shim_pid, c.bundle)) {
    // The shim writes the record and then exits: it may have done both since the first look.
    record = read_record();
    shim_gone = !record.has_value();
  }
  if (record.has_value()) {
    c.state = runtime::v1::CONTAINER_EXITED;
    c.exit_code = record->exit_code;
    c.finished_at = record->finished_at_ns;
    c.reason = record->oom_killed ? "OOMKilled" : record->exit_code == 0 ? "Completed" : "Error";
    if (c.started_at == 0) c.started_at = c.finished_at;
  } else if (shim_gone) {
    c.state = runtime::v1::CONTAINER_EXITED;
    c.exit_code = 255;
    c.finished_at = NowNanos();
    c.reason = "Error";
    c.message = "kapal-shim ended without recording the container's exit (node rebooted?)";
  } else {
    return;
  }
  if (absl::Status saved = SaveContainerRecord(c); !saved.ok()) {
    logger_.Error("container ", c.id, ": cannot record its exit: ", saved.message());
  } else {
    logger_.Info("container ", c.id, " exited with code ", c.exit_code, " (", c.reason, ")");
  }
}

absl::StatusOr<std::string> PodRuntime::ResolvePodId(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("pod sandbox id is empty");
  if (pods_.count(id) > 0) return id;
  std::string match;
  for (auto it = pods_.lower_bound(id); it != pods_.end() && absl::StartsWith(it->first, id);
       ++it) {
    if (!match.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("pod sandbox id prefix ", id, " is ambiguous"));
    }
    match = it->first;
  }
  if (match.empty()) return absl::NotFoundError(absl::StrCat("pod sandbox ", id, " not found"));
  return match;
}

absl::StatusOr<std::string> PodRuntime::ResolveContainerId(const std::string& id) {
  if (id.empty()) return absl::InvalidArgumentError("container id is empty");
  if (containers_.count(id) > 0) return id;
  std::string match;
  for (auto it = containers_.lower_bound(id);
       it != containers_.end() && absl::StartsWith(it->first, id); ++it) {
    if (!match.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("container id prefix ", id, " is ambiguous"));
    }
    match = it->first;
  }
  if (match.empty()) return absl::NotFoundError(absl::StrCat("container ", id, " not found"));
  return match;
}

std::string PodRuntime::CgroupsPath(const Pod& pod, const std::string& container_id) const {
  std::string parent = pod.config.linux().cgroup_parent();
  if (ResolveCgroupDriver(config_.cgroup_driver, host_) == CgroupDriver::kSystemd) {
    if (!absl::EndsWith(parent, ".slice")) parent = "kapal.slice";
    return absl::StrCat(parent, ":kapal:", container_id);
  }
  if (parent.empty()) parent = absl::StrCat("/kapal/", pod.id);
  if (parent[0] != '/') parent = "/" + parent;
  return absl::StrCat(parent, "/", container_id);
}

std::string PodRuntime::OomFile(const std::string& cgroups_path) const {
  if (cgroups_path.empty() || cgroups_path[0] != '/') return "";
  if (host_.cgroup_layout == CgroupLayout::kV2) {
    return absl::StrCat("/sys/fs/cgroup", cgroups_path, "/memory.events");
  }
  return absl::StrCat("/sys/fs/cgroup/memory", cgroups_path, "/memory.oom_control");
}

void PodRuntime::StopInfra(Pod& pod) {
  if (pod.infra_pid > 0 && InPinnedPidNamespace(pod.dir, pod.infra_pid)) {
    ::kill(pod.infra_pid, SIGKILL);
  }
  pod.infra_pid = 0;
  ::unlink((pod.dir + "/infra.pid").c_str());
}

void PodRuntime::RemovePodCgroup(const Pod& pod) const {
  // Only the parent kapal made up (no cgroup_parent given); kubelet's own it removes itself.
  if (!pod.config.linux().cgroup_parent().empty()) return;
  absl::StatusOr<std::vector<std::string>> hierarchies = base::ListDirectory("/sys/fs/cgroup");
  std::vector<std::string> roots = {"/sys/fs/cgroup"};
  if (hierarchies.ok()) {
    for (const std::string& name : *hierarchies) roots.push_back("/sys/fs/cgroup/" + name);
  }
  for (const std::string& root : roots) {
    ::rmdir(absl::StrCat(root, "/kapal/", pod.id).c_str());
    ::rmdir(absl::StrCat(root, "/kapal").c_str());  // fails while other pods use it: fine
  }
}

absl::StatusOr<std::string> PodRuntime::RunPod(const PodSandboxConfig& config,
                                               const std::string& runtime_handler) {
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
  absl::StatusOr<const Handler*> handler = HandlerFor(runtime_handler);
  if (!handler.ok()) return handler.status();
  PodNamespaces own = OwnNamespaces(config);
  if (absl::Status checked = CheckSysctls(config, own); !checked.ok()) return checked;
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
  if (own.network) {
    absl::StatusOr<CniNetwork> loaded =
        CniNetwork::Load(config_.cni_conf_dir, config_.cni_bin_dirs);
    if (!loaded.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("network not ready: ", loaded.status().message()));
    }
    network = std::move(*loaded);
  }

  // The name is reserved while the pod is made without the lock, so pods start in parallel.
  std::string full_name =
      absl::StrCat(meta.name(), "_", meta.namespace_(), "_", meta.uid(), "_", meta.attempt());
  std::string reservation = "pod/" + full_name;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [id, pod] : pods_) {
      const auto& other = pod.config.metadata();
      if (other.name() == meta.name() && other.namespace_() == meta.namespace_() &&
          other.uid() == meta.uid() && other.attempt() == meta.attempt()) {
        return absl::AlreadyExistsError(absl::StrCat(
            "pod sandbox name ", full_name, " is already used by ", id, "; remove that pod first"));
      }
    }
    if (!reserved_names_.insert(reservation).second) {
      return absl::AlreadyExistsError(absl::StrCat(
          "pod sandbox name ", full_name, " is being used by a RunPodSandbox in progress"));
    }
  }
  struct Unreserve {
    PodRuntime* self;
    std::string name;
    ~Unreserve() {
      std::lock_guard lock(self->mutex_);
      self->reserved_names_.erase(name);
    }
  } unreserve{this, reservation};
  Pod pod;
  pod.id = NewId();
  pod.config = config;
  pod.runtime_handler = (*handler)->name;
  pod.created_at = NowNanos();
  pod.dir = absl::StrCat(config_.state_dir, "/pods/", pod.id);
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
  if (absl::Status pinned = PinNamespaces(pod.dir, own, hostname); !pinned.ok()) return pinned;
  if (own.pid) {
    absl::StatusOr<int> infra = StartPodInfra(shim_binary_);
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
  }

  if (network.has_value()) {
    CniPod cni_pod = CniPodOf(pod);
    absl::StatusOr<nlohmann::json> result = network->Add(cni_pod);
    if (!result.ok()) return Annotate(result.status(), "set up the pod's network");
    networked = cni_pod;
    pod.cni_result = *result;
    pod.ips = CniNetwork::Addresses(*result);
  }
  pod.ready = true;
  if (absl::Status saved = SavePodRecord(pod); !saved.ok()) return saved;
  done = true;
  std::string id = pod.id;
  std::lock_guard lock(mutex_);
  pods_[id] = std::move(pod);
  logger_.Info("pod ", meta.namespace_(), "/", meta.name(), " runs as ", id);
  return id;
}

absl::Status PodRuntime::StopPod(const std::string& id_or_prefix) {
  std::vector<std::string> to_stop;
  std::string id;
  {
    std::lock_guard lock(mutex_);
    absl::StatusOr<std::string> resolved = ResolvePodId(id_or_prefix);
    // Stopping a pod that is gone succeeds, as in containerd and CRI-O.
    if (absl::IsNotFound(resolved.status())) return absl::OkStatus();
    if (!resolved.ok()) return resolved.status();
    id = *resolved;
    for (const auto& [cid, c] : containers_) {
      if (c.pod_id == id) to_stop.push_back(cid);
    }
  }
  for (const std::string& cid : to_stop) {
    if (absl::Status stopped = StopContainerUnlocked(cid, std::chrono::seconds(0)); !stopped.ok()) {
      return Annotate(stopped, "stop container " + cid);
    }
  }
  std::lock_guard lock(mutex_);
  auto found = pods_.find(id);
  if (found == pods_.end()) return absl::OkStatus();
  Pod& pod = found->second;
  StopInfra(pod);
  if (!pod.cni_result.is_null() && pod.own.network) {
    absl::StatusOr<CniNetwork> network =
        CniNetwork::Load(config_.cni_conf_dir, config_.cni_bin_dirs);
    CniPod cni_pod = CniPodOf(pod);
    if (network.ok()) {
      if (absl::Status deleted = network->Del(cni_pod, pod.cni_result); !deleted.ok()) {
        return Annotate(deleted, "tear down the pod's network");
      }
    } else {
      logger_.Warn("pod ", id,
                   ": no CNI config to tear its network down: ", network.status().message());
    }
    pod.cni_result = nlohmann::json();
  }
  pod.ready = false;
  return SavePodRecord(pod);
}

absl::Status PodRuntime::RemovePod(const std::string& id_or_prefix) {
  std::vector<std::string> to_remove;
  std::string id;
  {
    std::lock_guard lock(mutex_);
    absl::StatusOr<std::string> resolved = ResolvePodId(id_or_prefix);
    if (absl::IsNotFound(resolved.status())) return absl::OkStatus();
    if (!resolved.ok()) return resolved.status();
    id = *resolved;
  }
  // A pod still ready is stopped first (containerd refuses instead; kubelet always stops
  // first, and crictl rmp -f would do the same).
  if (absl::Status stopped = StopPod(id); !stopped.ok()) return stopped;
  {
    std::lock_guard lock(mutex_);
    for (const auto& [cid, c] : containers_) {
      if (c.pod_id == id) to_remove.push_back(cid);
    }
  }
  for (const std::string& cid : to_remove) {
    if (absl::Status removed = RemoveContainer(cid); !removed.ok()) return removed;
  }
  std::lock_guard lock(mutex_);
  auto found = pods_.find(id);
  if (found == pods_.end()) return absl::OkStatus();
  Pod& pod = found->second;
  if (absl::Status unpinned = UnpinNamespaces(pod.dir); !unpinned.ok()) return unpinned;
  if (::umount2((pod.dir + "/shm").c_str(), MNT_DETACH) != 0 && errno != EINVAL &&
      errno != ENOENT) {
    return base::ErrnoStatus(errno, "umount " + pod.dir + "/shm");
  }
  if (absl::Status removed = base::RemoveTree(pod.dir); !removed.ok()) return removed;
  RemovePodCgroup(pod);
  absl::Status deleted = store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement row(db, "DELETE FROM pods WHERE id = ?");
    row.bind(1, id);
    row.exec();
  });
  if (!deleted.ok()) return deleted;
  pods_.erase(found);
  logger_.Info("pod ", id, " removed");
  return absl::OkStatus();
}

absl::StatusOr<Pod> PodRuntime::GetPod(const std::string& id) {
  std::lock_guard lock(mutex_);
  absl::StatusOr<std::string> resolved = ResolvePodId(id);
  if (!resolved.ok()) return resolved.status();
  return pods_.at(*resolved);
}

std::vector<Pod> PodRuntime::ListPods() {
  std::lock_guard lock(mutex_);
  std::vector<Pod> pods;
  for (const auto& [id, pod] : pods_) pods.push_back(pod);
  return pods;
}

absl::StatusOr<std::string> PodRuntime::CreateContainer(const std::string& pod_id,
                                                        const ContainerConfig& config) {
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
    if (absl::Status checked = CheckClientPath(mount.host_path(), "mount host_path");
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
  std::string reservation;
  {
    std::lock_guard lock(mutex_);
    absl::StatusOr<std::string> resolved = ResolvePodId(pod_id);
    if (!resolved.ok()) return resolved.status();
    pod = pods_.at(*resolved);
    if (!pod.ready) {
      return absl::FailedPreconditionError(
          absl::StrCat("pod sandbox ", pod.id, " is not ready (stopped); run a new one"));
    }
    for (const auto& [id, other] : containers_) {
      if (other.pod_id == pod.id && other.config.metadata().name() == meta.name() &&
          other.config.metadata().attempt() == meta.attempt()) {
        return absl::AlreadyExistsError(absl::StrCat("container name ", meta.name(), " (attempt ",
                                                     meta.attempt(), ") is already used by ", id,
                                                     " in pod ", pod.id));
      }
    }
    reservation = absl::StrCat("container/", pod.id, "/", meta.name(), "/", meta.attempt());
    if (!reserved_names_.insert(reservation).second) {
      return absl::AlreadyExistsError(absl::StrCat("container name ", meta.name(),
                                                   " is being used by a CreateContainer in "
                                                   "progress in pod ",
                                                   pod.id));
    }
  }
  struct Unreserve {
    PodRuntime* self;
    std::string name;
    ~Unreserve() {
      std::lock_guard lock(self->mutex_);
      self->reserved_names_.erase(name);
    }
  } unreserve{this, reservation};
  absl::StatusOr<const Handler*> handler = HandlerFor(pod.runtime_handler);
  if (!handler.ok()) return handler.status();

  Container c;
  c.id = NewId();
  c.pod_id = pod.id;
  c.config = config;
  c.image_id = image->id.String();
  c.image_ref = image->repo_digests.empty() ? image->id.String() : image->repo_digests.front();
  c.state = runtime::v1::CONTAINER_CREATED;
  c.snapshot_key = kContainerSnapshotPrefix + c.id;
  c.created_at = NowNanos();
  c.bundle = absl::StrCat(config_.state_dir, "/containers/", c.id);
  if (!pod.config.log_directory().empty() && !config.log_path().empty()) {
    c.log_path = absl::StrCat(pod.config.log_directory(), "/", config.log_path());
  } else {
    // No log path asked for: keep the output in the bundle, so `kapalctl logs` still works.
    c.log_path = c.bundle + "/output.log";
  }
  ImageRuntimeConfig image_config = ImageRuntimeConfig::Parse(image->config_json);
  c.stop_signal = config.stop_signal() != runtime::v1::RUNTIME_DEFAULT
                      ? static_cast<int>(config.stop_signal())
                      : ParseSignal(image_config.stop_signal);
  if (c.stop_signal == 0) c.stop_signal = SIGTERM;

  bool done = false;
  bool mounted = false;
  bool prepared = false;
  const OciRuntime& runtime = (*handler)->runtime;
  struct Undo {
    std::function<void()> fn;
    ~Undo() { fn(); }
  } undo{[&] {
    if (done) return;
    (void)runtime.Delete(c.id);
    if (mounted) ::umount2((c.bundle + "/rootfs").c_str(), MNT_DETACH);
    if (prepared) (void)snapshots_.Remove(c.snapshot_key);
    (void)base::RemoveTree(c.bundle);
  }};

  if (absl::Status made = base::MakeDirectories(c.bundle + "/rootfs", 0700); !made.ok()) {
    return made;
  }
  absl::StatusOr<std::vector<snapshotter::Mount>> mounts =
      snapshots_.Prepare(c.snapshot_key, image->top_chain_id.String());
  if (!mounts.ok()) return Annotate(mounts.status(), "prepare the root filesystem");
  prepared = true;
  absl::StatusOr<snapshotter::ScopedMount> rootfs =
      snapshotter::ScopedMount::Create(*mounts, c.bundle + "/rootfs");
  if (!rootfs.ok()) return Annotate(rootfs.status(), "mount the root filesystem");
  rootfs->Release();  // stays mounted for the container's life; RemoveContainer unmounts
  mounted = true;

  absl::StatusOr<ProcessUser> user = ResolveUser(c.bundle + "/rootfs", config, image_config.user);
  if (!user.ok()) return user.status();
  c.user = *user;
  SpecInputs inputs;
  inputs.container_id = c.id;
  inputs.container = &config;
  inputs.pod = &pod.config;
  inputs.image = image_config;
  inputs.user = *user;
  inputs.rootfs = c.bundle + "/rootfs";
  absl::StatusOr<std::string> hostname = base::ReadFile(pod.dir + "/hostname");
  inputs.hostname = hostname.ok() ? std::string(absl::StripTrailingAsciiWhitespace(*hostname)) : "";
  inputs.pod_files = {pod.dir, pod.own};
  inputs.cgroups_path = CgroupsPath(pod, c.id);
  if (config.linux().security_context().namespace_options().pid() == runtime::v1::POD &&
      pod.own.pid) {
    if (!InPinnedPidNamespace(pod.dir, pod.infra_pid)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "pod sandbox ", pod.id, " has lost its infra process (its shared PID namespace)"));
    }
    inputs.pid_namespace_path = pod.dir + "/pid";
  }
  inputs.cgroup_v2 = host_.cgroup_layout == CgroupLayout::kV2;
  inputs.min_oom_score_adj = min_oom_score_adj_;
  absl::StatusOr<nlohmann::json> spec = BuildContainerSpec(inputs);
  if (!spec.ok()) return spec.status();
  if (absl::Status written = base::WriteFileAtomically(c.bundle + "/config.json", spec->dump(),
                                                       0600, base::Durability::kVolatile);
      !written.ok()) {
    return written;
  }
  size_t slash = c.log_path.rfind('/');
  if (absl::Status made = base::MakeDirectories(c.log_path.substr(0, slash), 0755); !made.ok()) {
    return made;
  }

  ShimLaunch launch;
  launch.shim_binary = shim_binary_;
  launch.container_id = c.id;
  launch.bundle = c.bundle;
  launch.log_path = c.log_path;
  launch.oom_file = OomFile(inputs.cgroups_path);
  launch.exit_dir = exit_dir_;
  launch.terminal = config.tty();
  launch.stdin_open = config.stdin();
  // Record the container before the shim starts, so a crash in between leaves a record that
  // the next start resolves (the shim's exit file or its absence), never an unknown process.
  if (absl::Status saved = SaveContainerRecord(c); !saved.ok()) return saved;
  absl::StatusOr<ShimProcess> shim = runtime.Create(launch);
  if (!shim.ok()) {
    (void)store_.WithDatabase([&](SQLite::Database& db) {
      SQLite::Statement row(db, "DELETE FROM containers WHERE id = ?");
      row.bind(1, c.id);
      row.exec();
    });
    return Annotate(shim.status(), "create the container");
  }
  // The record already names the container; the shim's pid reaches the store with the next
  // change (start), and until then the shim's own pid file tells a restarted kapald.
  c.shim_pid = shim->shim_pid;
  done = true;
  std::string id = c.id;
  std::lock_guard lock(mutex_);
  containers_[id] = std::move(c);
  logger_.Info("container ", meta.name(), " created as ", id, " in pod ", pod.id);
  return id;
}

absl::Status PodRuntime::StartContainer(const std::string& id_or_prefix) {
  std::lock_guard lock(mutex_);
  absl::StatusOr<Container*> found_container = FindContainerLocked(id_or_prefix);
  if (!found_container.ok()) return found_container.status();
  Container& c = **found_container;
  if (c.state != runtime::v1::CONTAINER_CREATED) {
    return absl::FailedPreconditionError(absl::StrCat(
        "container ", c.id, " is ", ContainerStateName(c.state), "; only a created one can start"));
  }
  absl::StatusOr<const Handler*> handler = HandlerOfLocked(c);
  if (!handler.ok()) return handler.status();
  // The process runs from inside `start` on; it may even have exited when start returns.
  int64_t starting_at = NowNanos();
  if (absl::Status started = (*handler)->runtime.Start(c.id); !started.ok()) {
    // A process that failed to exec (no such command) shows here; record it as an exit.
    c.state = runtime::v1::CONTAINER_EXITED;
    c.exit_code = 128;
    c.reason = "StartError";
    c.message = std::string(started.message());
    c.finished_at = NowNanos();
    (void)SaveContainerRecord(c);
    return Annotate(started, "start container " + c.id);
  }
  c.started_at = starting_at;
  c.state = runtime::v1::CONTAINER_RUNNING;
  absl::Status saved = SaveContainerRecord(c);
  // A container that ends at once may have exited already.
  RefreshLocked(c);
  return saved;
}

absl::Status PodRuntime::StopContainerUnlocked(const std::string& id_or_prefix,
                                               std::chrono::seconds timeout) {
  std::string id;
  std::string bundle;
  int stop_signal = SIGTERM;
  const Handler* handler = nullptr;
  {
    std::lock_guard lock(mutex_);
    absl::StatusOr<Container*> found_container = FindContainerLocked(id_or_prefix);
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
  std::string exit_file = bundle + "/" + shim::kExitFile;
  auto wait_for_exit = [&](std::chrono::milliseconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (::access(exit_file.c_str(), F_OK) != 0) {
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return true;
  };
  bool created_only = false;
  {
    std::lock_guard lock(mutex_);
    created_only =
        containers_.count(id) > 0 && containers_.at(id).state == runtime::v1::CONTAINER_CREATED;
  }
  if (timeout.count() > 0 && !created_only) {
    absl::Status signalled = handler->runtime.Kill(id, stop_signal);
    if (!signalled.ok() && !absl::IsNotFound(signalled)) return signalled;
    wait_for_exit(timeout);
  }
  if (::access(exit_file.c_str(), F_OK) != 0) {
    absl::Status killed = handler->runtime.Kill(id, SIGKILL, /*all=*/true);
    if (!killed.ok() && !absl::IsNotFound(killed)) return killed;
    if (!wait_for_exit(kKillWait)) {
      return absl::DeadlineExceededError(absl::StrCat("container ", id, " did not exit within ",
                                                      kKillWait.count(), " s of SIGKILL"));
    }
  }
  std::lock_guard lock(mutex_);
  if (containers_.count(id) > 0) RefreshLocked(containers_.at(id));
  return absl::OkStatus();
}

absl::Status PodRuntime::StopContainer(const std::string& id, std::chrono::seconds timeout) {
  return StopContainerUnlocked(id, timeout);
}

absl::Status PodRuntime::CleanUpContainerLocked(const Container& c) {
  absl::StatusOr<const Handler*> handler = HandlerOfLocked(c);
  if (handler.ok()) {
    if (absl::Status deleted = (*handler)->runtime.Delete(c.id); !deleted.ok()) return deleted;
  }
  std::string rootfs = c.bundle + "/rootfs";
  if (::umount2(rootfs.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    return base::ErrnoStatus(errno, "umount " + rootfs);
  }
  absl::Status snapshot = snapshots_.Remove(c.snapshot_key);
  if (!snapshot.ok() && !absl::IsNotFound(snapshot)) return snapshot;
  // The image may have been removed while the container used it: its layers go now.
  if (absl::StatusOr<images::ImageRecord> image = images_.Find(c.image_id);
      absl::IsNotFound(image.status())) {
    if (absl::Status collected = images::RemoveUnusedSnapshots(images_, snapshots_);
        !collected.ok()) {
      logger_.Warn("removing the layers of a removed image: ", collected.message());
    }
  }
  return base::RemoveTree(c.bundle);
}

absl::Status PodRuntime::RemoveContainer(const std::string& id_or_prefix) {
  std::string id;
  {
    std::lock_guard lock(mutex_);
    absl::StatusOr<std::string> resolved = ResolveContainerId(id_or_prefix);
    if (absl::IsNotFound(resolved.status())) return absl::OkStatus();  // idempotent
    if (!resolved.ok()) return resolved.status();
    id = *resolved;
  }
  if (absl::Status stopped = StopContainerUnlocked(id, std::chrono::seconds(0)); !stopped.ok()) {
    return stopped;
  }
  std::lock_guard lock(mutex_);
  auto found = containers_.find(id);
  if (found == containers_.end()) return absl::OkStatus();
  if (absl::Status cleaned = CleanUpContainerLocked(found->second); !cleaned.ok()) {
    return Annotate(cleaned, "remove container " + id);
  }
  absl::Status deleted = store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement row(db, "DELETE FROM containers WHERE id = ?");
    row.bind(1, id);
    row.exec();
  });
  if (!deleted.ok()) return deleted;
  containers_.erase(found);
  return absl::OkStatus();
}

absl::StatusOr<Container> PodRuntime::GetContainer(const std::string& id) {
  std::lock_guard lock(mutex_);
  absl::StatusOr<std::string> resolved = ResolveContainerId(id);
  if (!resolved.ok()) return resolved.status();
  Container& c = containers_.at(*resolved);
  RefreshLocked(c);
  return c;
}

std::vector<Container> PodRuntime::ListContainers() {
  std::lock_guard lock(mutex_);
  std::vector<Container> list;
  for (auto& [id, c] : containers_) {
    RefreshLocked(c);
    list.push_back(c);
  }
  return list;
}

absl::StatusOr<ExecResult> PodRuntime::ExecSync(const std::string& id_or_prefix,
                                                const std::vector<std::string>& cmd,
                                                std::chrono::seconds timeout) {
  if (cmd.empty()) return absl::InvalidArgumentError("exec needs a command");
  std::string id, bundle;
  const Handler* handler = nullptr;
  {
    std::lock_guard lock(mutex_);
    absl::StatusOr<Container*> found_container = FindContainerLocked(id_or_prefix);
    if (!found_container.ok()) return found_container.status();
    Container& c = **found_container;
    if (c.state != runtime::v1::CONTAINER_RUNNING) {
      return absl::FailedPreconditionError(absl::StrCat(
          "container ", c.id, " is ", ContainerStateName(c.state), "; exec needs a running one"));
    }
    absl::StatusOr<const Handler*> found = HandlerOfLocked(c);
    if (!found.ok()) return found.status();
    handler = *found;
    id = c.id;
    bundle = c.bundle;
  }
  // The exec'd process is the container's own process with another command line: same user,
  // environment, working dir, capabilities.
  absl::StatusOr<std::string> spec_text = base::ReadFile(bundle + "/config.json");
  if (!spec_text.ok()) return spec_text.status();
  nlohmann::json spec = nlohmann::json::parse(*spec_text, nullptr, false);
  if (!spec.is_object() || !spec.contains("process")) {
    return absl::DataLossError(absl::StrCat("container ", id, " has a damaged config.json"));
  }
  nlohmann::json process = spec["process"];
  process["args"] = cmd;
  process["terminal"] = false;
  absl::StatusOr<base::TempDir> scratch = base::TempDir::Create("exec", bundle);
  if (!scratch.ok()) return scratch.status();
  std::string process_file = scratch->Join("process.json");
  if (absl::Status written = base::WriteFileAtomically(process_file, process.dump(), 0600,
                                                       base::Durability::kVolatile);
      !written.ok()) {
    return written;
  }
  std::chrono::milliseconds limit =
      timeout.count() > 0 ? std::chrono::milliseconds(timeout) : std::chrono::hours(24 * 365);
  absl::StatusOr<base::CommandResult> ran =
      handler->runtime.Exec(id, process_file, scratch->Join("pid"), limit);
  if (absl::IsDeadlineExceeded(ran.status())) {
    return absl::DeadlineExceededError(absl::StrCat("command ", absl::StrJoin(cmd, " "),
                                                    " timed out after ", timeout.count(), " s"));
  }
  if (!ran.ok()) return ran.status();
  ExecResult result{ran->output, ran->errors,
                    ran->exit.exited ? ran->exit.exit_code : 128 + ran->exit.signal};
  return result;
}

absl::Status PodRuntime::ReopenContainerLog(const std::string& id_or_prefix) {
  std::string bundle;
  {
    std::lock_guard lock(mutex_);
    absl::StatusOr<Container*> found_container = FindContainerLocked(id_or_prefix);
    if (!found_container.ok()) return found_container.status();
    Container& c = **found_container;
    if (c.state != runtime::v1::CONTAINER_RUNNING) {
      return absl::FailedPreconditionError(
          absl::StrCat("container ", c.id, " is not running; its log is closed"));
    }
    bundle = c.bundle;
  }
  absl::StatusOr<std::string> answer = AskShim(bundle, "reopen");
  if (!answer.ok()) return answer.status();
  if (*answer != "ok") return absl::InternalError(absl::StrCat("reopen log: ", *answer));
  return absl::OkStatus();
}

}  // namespace kapal::cri
