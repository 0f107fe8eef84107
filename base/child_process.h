#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kapal::base {

struct ChildOptions {
  // Extra environment on top of the parent's (a value replaces the parent's).
  std::map<std::string, std::string> environment;
  // Files the child's stdout and stderr go to; empty keeps the parent's.
  std::string stdout_path;
  std::string stderr_path;
  // Own process group, so a kill of the group reaches everything the child starts.
  bool new_process_group = true;
};

// How a child ended: exited with a code, or was killed by a signal.
struct ExitInfo {
  bool exited = false;
  int exit_code = -1;
  int signal = 0;
  std::string Describe() const;
};

// A child process owned by scope: if it still runs when the object is destroyed, it (and its
// process group) gets SIGKILL and is reaped, so no failing test or early return leaves it behind.
class ChildProcess {
 public:
  static absl::StatusOr<ChildProcess> Spawn(const std::vector<std::string>& argv,
                                            const ChildOptions& options = {});

  ChildProcess(ChildProcess&& other) noexcept;
  ChildProcess& operator=(ChildProcess&& other) noexcept;
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  pid_t Pid() const { return pid_; }
  bool Running();

  absl::Status Signal(int signal);
  // Waits until the child ends or TIMEOUT passes (DEADLINE_EXCEEDED, the child keeps running).
  absl::StatusOr<ExitInfo> Wait(std::chrono::milliseconds timeout);
  // SIGKILL to the child (its group when it has one) and reap it.
  void Kill();

 private:
  ChildProcess(pid_t pid, bool own_group) : pid_(pid), own_group_(own_group) {}
  std::optional<ExitInfo> TryReap();

  pid_t pid_ = -1;
  bool own_group_ = false;
  std::optional<ExitInfo> exit_;
};

}  // namespace kapal::base
