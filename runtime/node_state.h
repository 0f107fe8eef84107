#pragma once

#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "runtime/records.h"

namespace kapal::runtime {

// What the node has: its pods and containers in memory (the store holds the same), under one
// mutex. Slow work (namespaces, CNI, runc) is done without the lock; a name being used by a
// RunPodSandbox or CreateContainer in progress is reserved meanwhile.
struct NodeState {
  std::mutex mutex;
  std::map<std::string, Pod> pods;
  std::map<std::string, Container> containers;
  std::set<std::string> reserved_names;
  // Notified (under the mutex) when a container exits, is made created again or is removed:
  // what waiters for an exit (the Docker API's wait, its auto-removal) sleep on.
  std::condition_variable containers_changed;

  // An id or a unique id prefix; NOT_FOUND or INVALID_ARGUMENT (ambiguous) otherwise. Locked.
  absl::StatusOr<std::string> ResolvePodIdLocked(const std::string& id_or_prefix) const;
  absl::StatusOr<std::string> ResolveContainerIdLocked(const std::string& id_or_prefix) const;
  // For stop and remove, which succeed on what is gone (as in containerd and CRI-O): the pod's
  // id, or nullopt when there is no such pod. Locked.
  absl::StatusOr<std::optional<std::string>> ExistingPodIdLocked(
      const std::string& id_or_prefix) const;
};

// Holds a reserved name until the scope ends (the work done or given up).
class NameReservation {
 public:
  // ALREADY_EXISTS with MESSAGE when the name is reserved already. Takes the lock itself.
  static absl::StatusOr<NameReservation> Take(NodeState& state, std::string name,
                                              absl::string_view message);
  // Takes the name when the caller holds the lock already.
  static absl::StatusOr<NameReservation> TakeLocked(NodeState& state, std::string name,
                                                    absl::string_view message);
  NameReservation(NameReservation&& other) noexcept
      : state_(other.state_), name_(std::move(other.name_)) {
    other.state_ = nullptr;
  }
  NameReservation& operator=(NameReservation&&) = delete;
  ~NameReservation();

 private:
  NameReservation(NodeState& state, std::string name) : state_(&state), name_(std::move(name)) {}
  NodeState* state_;
  std::string name_;
};

// STATUS with CONTEXT before its message, same code ("set up the pod's network: ...").
absl::Status Annotate(const absl::Status& status, absl::string_view context);

}  // namespace kapal::runtime
