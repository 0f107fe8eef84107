#pragma once

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "snapshotter/snapshotter.h"

namespace kapal::snapshotter {

// Mounts MOUNTS on TARGET and unmounts when it goes out of scope, so a failing caller or test
// never leaves a mount behind.
class ScopedMount {
 public:
  static absl::StatusOr<ScopedMount> Create(const std::vector<Mount>& mounts,
                                            const std::string& target);
  ScopedMount(ScopedMount&& other) noexcept : target_(std::move(other.target_)) {
    other.target_.clear();
  }
  ScopedMount& operator=(ScopedMount&&) = delete;
  ScopedMount(const ScopedMount&) = delete;
  ~ScopedMount();

  const std::string& Target() const { return target_; }
  absl::Status Unmount();
  // Keeps the mount beyond this object (the owner unmounts it later) and returns the target.
  std::string Release() { return std::exchange(target_, std::string()); }

 private:
  explicit ScopedMount(std::string target) : target_(std::move(target)) {}
  std::string target_;
};

// The options of M as mount(2) wants them: flags and the comma-joined data string.
struct MountCall {
  unsigned long flags = 0;
  std::string data;
};
MountCall ToMountCall(const Mount& mount);

}  // namespace kapal::snapshotter
