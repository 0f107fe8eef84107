#pragma once

#include <mutex>
#include <string>

#include "absl/status/status.h"

namespace kapal::runtime {

// Whether containers can be checkpointed here: CRIU (Debian's criu) installed and able to work
// on this kernel, as `criu check` says. Asked once, on the first checkpoint: the kernel does
// not change under a running kapald.
class CheckpointSupport {
 public:
  explicit CheckpointSupport(std::string criu_binary = "criu")
      : criu_binary_(std::move(criu_binary)) {}

  // OK when CRIU can checkpoint; FAILED_PRECONDITION saying why not (not installed, or its
  // check's own complaint about this kernel).
  absl::Status Check();

 private:
  std::string criu_binary_;
  std::once_flag checked_;
  absl::Status verdict_;
};

}  // namespace kapal::runtime
