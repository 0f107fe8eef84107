#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "base/unique_fd.h"

namespace kapal::runtime {

// True when process PID exists (EPERM counts: it exists, owned by another user).
bool ProcessAlive(int pid);

// True when PID is the kapal-shim of BUNDLE: a pid can be reused after a reboot or a crash.
bool ShimAlive(int pid, const std::string& bundle);

// Connects to the shim's socket NAME in BUNDLE (shim/exit_file.h names them). FAILED_PRECONDITION
// when nothing listens there.
absl::StatusOr<base::UniqueFd> ConnectShimSocket(const std::string& bundle, const char* name);

// Sends one line to the shim's control socket in BUNDLE and returns its answer line.
// FAILED_PRECONDITION when the shim does not answer.
absl::StatusOr<std::string> AskShim(const std::string& bundle, const std::string& command);

}  // namespace kapal::runtime
