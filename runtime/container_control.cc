// Docker's pause, unpause and top on a running container, through its OCI runtime. The state
// stays "running" in CRI's terms (CRI knows no paused state); the runtime says whether it is
// frozen.

#include "absl/strings/str_cat.h"
#include "runtime/containers.h"

namespace kapal::runtime {

absl::StatusOr<std::pair<std::string, const Handler*>> Containers::RunningHandler(
    const std::string& id_or_prefix) {
  std::lock_guard lock(state_.mutex);
  absl::StatusOr<Container*> found = FindLocked(id_or_prefix);
  if (!found.ok()) return found.status();
  if ((*found)->state != runtime::v1::CONTAINER_RUNNING) {
    return absl::FailedPreconditionError(
        absl::StrCat("container ", (*found)->id, " is not running"));
  }
  absl::StatusOr<const Handler*> handler = HandlerOfLocked(**found);
  if (!handler.ok()) return handler.status();
  return std::make_pair((*found)->id, *handler);
}

absl::Status Containers::Pause(const std::string& id_or_prefix) {
  absl::StatusOr<std::pair<std::string, const Handler*>> running = RunningHandler(id_or_prefix);
  if (!running.ok()) return running.status();
  const auto& [id, handler] = *running;
  if (handler->runtime.State(id).value_or("") == "paused") {
    return absl::FailedPreconditionError(absl::StrCat("container ", id, " is already paused"));
  }
  if (absl::Status paused = handler->runtime.Pause(id); !paused.ok()) return paused;
  MarkPaused(id, true);
  return absl::OkStatus();
}

bool Containers::FrozenLocked(const Container& container) const {
  auto pod = state_.pods.find(container.pod_id);
  if (pod == state_.pods.end()) return false;
  return cgroups_.Frozen(cgroups_.ContainerPath(pod->second, container.id));
}

void Containers::MarkPaused(const std::string& id, bool paused) {
  std::lock_guard lock(state_.mutex);
  if (auto found = state_.containers.find(id); found != state_.containers.end()) {
    found->second.paused = paused;
  }
}

absl::Status Containers::Resume(const std::string& id_or_prefix) {
  absl::StatusOr<std::pair<std::string, const Handler*>> running = RunningHandler(id_or_prefix);
  if (!running.ok()) return running.status();
  const auto& [id, handler] = *running;
  if (handler->runtime.State(id).value_or("") != "paused") {
    return absl::FailedPreconditionError(absl::StrCat("container ", id, " is not paused"));
  }
  if (absl::Status resumed = handler->runtime.Resume(id); !resumed.ok()) return resumed;
  MarkPaused(id, false);
  return absl::OkStatus();
}

// From the record, not the runtime: `docker ps` asks for every container, and a runtime call is a
// fork each.
bool Containers::Paused(const std::string& id_or_prefix) {
  std::lock_guard lock(state_.mutex);
  absl::StatusOr<Container*> found = FindLocked(id_or_prefix);
  return found.ok() && (*found)->state == runtime::v1::CONTAINER_RUNNING && (*found)->paused;
}

absl::StatusOr<std::vector<int>> Containers::Processes(const std::string& id_or_prefix) {
  absl::StatusOr<std::pair<std::string, const Handler*>> running = RunningHandler(id_or_prefix);
  if (!running.ok()) return running.status();
  return running->second->runtime.Processes(running->first);
}

}  // namespace kapal::runtime
