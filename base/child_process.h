#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
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
  // Descriptors the child gets as its stdin, stdout and stderr (they win over the paths); -1
  // keeps the parent's. The caller keeps and closes its own copies.
  int stdin_fd = -1;
  int stdout_fd = -1;
  int stderr_fd = -1;
  // Own process group, so a kill of the group reaches everything the child starts.
  bool new_process_group = true;
  // A session of its own whose controlling terminal is STDIN_FD (a terminal's slave end): the
  // child then gets SIGWINCH when the terminal's size changes. Implies its own process group.
  bool controlling_terminal = false;
  // The child's file mode creation mask, when it must not be the parent's (kapald runs with
  // 077; a process exec'd into a container inherits the mask through the OCI runtime and
  // expects 022, as under containerd).
  std::optional<mode_t> umask;
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

// What a command printed and how it ended.
struct CommandResult {
  ExitInfo exit;
  std::string output;  // stdout
  std::string errors;  // stderr
  bool Succeeded() const { return exit.exited && exit.exit_code == 0; }
  // "exit code 1: <stderr or stdout, trimmed>"
  std::string Describe() const;
};

// Runs ARGV with INPUT on its stdin, collects stdout and stderr, and waits for it to end. After
// TIMEOUT, AT_DEADLINE (when given) is called, the command gets two seconds to end by itself,
// then its process group is killed; DEADLINE_EXCEEDED is returned.
absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         const std::string& input,
                                         std::chrono::milliseconds timeout,
                                         ChildOptions options = {},
                                         const std::function<void()>& at_deadline = nullptr);

// Marks every descriptor from 3 up close-on-exec. A daemon calls it first thing: what it
// inherited from whoever started it (a test runner's log, a supervisor's pipe, a lock) then
// reaches none of its children, so no shim keeps such a file open for the life of a container.
void MarkInheritedDescriptorsCloseOnExec();

// SIGKILL to process ROOT and every descendant, leaves first (a parent still waiting reaps its
// child, instead of leaving a zombie to an init that may never reap it).
void KillProcessTree(pid_t root);

}  // namespace kapal::base
