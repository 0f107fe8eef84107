#include "runtime/node_state.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace kapal::runtime {

namespace {

// One lookup for pods and containers: the exact id, else the one id that starts with it.
template <typename Record>
absl::StatusOr<std::string> ResolveId(const std::map<std::string, Record>& records,
                                      const std::string& id, absl::string_view kind) {
  if (id.empty()) return absl::InvalidArgumentError(absl::StrCat(kind, " id is empty"));
  if (records.count(id) > 0) return id;
  std::string match;
  for (auto it = records.lower_bound(id); it != records.end() && absl::StartsWith(it->first, id);
       ++it) {
    if (!match.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(kind, " id prefix ", id, " is ambiguous"));
    }
    match = it->first;
  }
  if (match.empty()) return absl::NotFoundError(absl::StrCat(kind, " ", id, " not found"));
  return match;
}

}  // namespace

absl::StatusOr<std::string> NodeState::ResolvePodIdLocked(const std::string& id) const {
  return ResolveId(pods, id, "pod sandbox");
}

absl::StatusOr<std::string> NodeState::ResolveContainerIdLocked(const std::string& id) const {
  return ResolveId(containers, id, "container");
}

absl::StatusOr<std::optional<std::string>> NodeState::ExistingPodIdLocked(
    const std::string& id) const {
  absl::StatusOr<std::string> resolved = ResolvePodIdLocked(id);
  if (absl::IsNotFound(resolved.status())) return std::nullopt;
  if (!resolved.ok()) return resolved.status();
  return *resolved;
}

absl::StatusOr<NameReservation> NameReservation::Take(NodeState& state, std::string name,
                                                      absl::string_view message) {
  std::lock_guard lock(state.mutex);
  return TakeLocked(state, std::move(name), message);
}

absl::StatusOr<NameReservation> NameReservation::TakeLocked(NodeState& state, std::string name,
                                                            absl::string_view message) {
  if (!state.reserved_names.insert(name).second) return absl::AlreadyExistsError(message);
  return NameReservation(state, std::move(name));
}

NameReservation::~NameReservation() {
  if (state_ == nullptr) return;
  std::lock_guard lock(state_->mutex);
  state_->reserved_names.erase(name_);
}

absl::Status Annotate(const absl::Status& status, absl::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

}  // namespace kapal::runtime
