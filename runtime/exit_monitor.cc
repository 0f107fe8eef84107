#include "runtime/exit_monitor.h"

#include <poll.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <optional>

#include "absl/strings/str_cat.h"
#include "base/files.h"
#include "runtime/shim_client.h"
#include "shim/exit_file.h"

namespace kapal::runtime {

bool AwaitExitRecord(const std::string& bundle, std::chrono::milliseconds limit) {
  std::string exit_file = bundle + "/" + shim::kExitFile;
  auto start = std::chrono::steady_clock::now();
  auto deadline = start + limit;
  while (::access(exit_file.c_str(), F_OK) != 0) {
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return false;
    std::this_thread::sleep_for(now - start < std::chrono::milliseconds(100)
                                    ? std::chrono::milliseconds(1)
                                    : std::chrono::milliseconds(10));
  }
  return true;
}

ExitMonitor::ExitMonitor(NodeState& state, RecordStore& records, const Handlers& handlers,
                         NodeMetrics& metrics, NodeEvents& events, base::Logger& logger,
                         std::string exit_dir)
    : state_(state),
      records_(records),
      handlers_(handlers),
      metrics_(metrics),
      events_(events),
      logger_(logger),
      exit_dir_(std::move(exit_dir)) {}

ExitMonitor::~ExitMonitor() {
  if (watcher_.joinable()) {
    uint64_t one = 1;
    (void)!::write(stop_watch_.Get(), &one, sizeof one);
    watcher_.join();
  }
}

absl::Status ExitMonitor::Start() {
  exit_watch_.Reset(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  if (!exit_watch_) return base::ErrnoStatus(errno, "inotify_init1");
  if (::inotify_add_watch(exit_watch_.Get(), exit_dir_.c_str(), IN_CREATE | IN_MOVED_TO) < 0) {
    return base::ErrnoStatus(errno, "watch " + exit_dir_);
  }
  stop_watch_.Reset(::eventfd(0, EFD_CLOEXEC));
  if (!stop_watch_) return base::ErrnoStatus(errno, "eventfd");
  RecordExitsNoted();  // those noted before the watch began
  watcher_ = std::thread([this] { Watch(); });
  return absl::OkStatus();
}

void ExitMonitor::Watch() {
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

void ExitMonitor::RecordExitsNoted() {
  absl::StatusOr<std::vector<std::string>> noted = base::ListDirectory(exit_dir_);
  if (!noted.ok()) return;
  std::lock_guard lock(state_.mutex);
  for (const std::string& id : *noted) {
    auto found = state_.containers.find(id);
    // A container still being created is not in the map yet; its note waits for the next
    // event or for a client's question (which reads the bundle's record either way).
    if (found == state_.containers.end() && state_.reserved_names.empty()) {
      ::unlink((exit_dir_ + "/" + id).c_str());
      continue;
    }
    if (found == state_.containers.end()) continue;
    // Its exit recorded before the note came (read from the bundle, or a refused start).
    if (found->second.state == runtime::v1::CONTAINER_EXITED) {
      ::unlink((exit_dir_ + "/" + id).c_str());
      continue;
    }
    RefreshLocked(found->second);  // removes the note once it records the exit
  }
}

void ExitMonitor::RefreshLocked(Container& c) {
  if (c.state != runtime::v1::CONTAINER_RUNNING && c.state != runtime::v1::CONTAINER_CREATED) {
    return;
  }
  if (c.shim_pid == 0) return;  // being created
  if (c.starting) return;       // Start refreshes once it has reported the start
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
    metrics_.ContainerExited(c.reason);
  } else if (shim_gone) {
    c.state = runtime::v1::CONTAINER_EXITED;
    c.exit_code = 255;
    c.finished_at = NowNanos();
    c.reason = "Error";
    c.message = "kapal-shim ended without recording the container's exit (node rebooted?)";
    metrics_.ContainerExited(c.reason);
    auto pod = state_.pods.find(c.pod_id);
    absl::StatusOr<const Handler*> handler =
        handlers_.Find(pod != state_.pods.end() ? pod->second.runtime_handler : "");
    absl::StatusOr<std::string> runtime_state = handler.ok()
                                                    ? (*handler)->runtime.State(c.id)
                                                    : absl::StatusOr<std::string>(handler.status());
    if (runtime_state.ok() && (*runtime_state == "running" || *runtime_state == "created" ||
                               *runtime_state == "paused")) {
      (void)(*handler)->runtime.Kill(c.id, SIGKILL, /*all=*/true);
      c.exit_code = 128 + SIGKILL;
      c.message = absl::StrCat("kapal-shim (pid ", c.shim_pid,
                               ") died while the container ran; the container was ended, since "
                               "nothing could record its output and exit any more");
      logger_.Warn("container ", c.id, ": ", c.message);
    }
  } else {
    return;
  }
  state_.containers_changed.notify_all();
  ::unlink((exit_dir_ + "/" + c.id).c_str());  // the shim's note is answered
  if (absl::Status saved = records_.SaveContainer(c); !saved.ok()) {
    logger_.Error("container ", c.id, ": cannot record its exit: ", saved.message());
  } else {
    logger_.Info("container ", c.id, " exited with code ", c.exit_code, " (", c.reason, ")");
  }
  // Reported once written (a failed write is logged; the shim's exit record still has it).
  events_.PublishLocked(LifecycleChange::kStopped, c.id, c.pod_id);
}

}  // namespace kapal::runtime
