#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "base/child_process.h"
#include "base/temp_dir.h"
#include "base/unique_fd.h"

namespace kapal::runtime {

// What an interactive exec asks for (CRI's ExecRequest without the container).
struct ExecOptions {
  std::vector<std::string> cmd;
  bool tty = false;
  bool stdin = false;
  bool stdout = true;
  bool stderr = true;  // ignored with a terminal: it carries both
  // Docker's exec has these; CRI's has not (its process is the container's with another args).
  std::vector<std::string> env;  // "NAME=VALUE", replacing the container's NAME
  std::string working_dir;       // "" = the container's
  std::string user;  // USER[:GROUP] (names from the container's /etc files); "" = the container's
  bool privileged = false;  // every capability kapald holds, whatever the container's
};

// A process run in a running container for a streaming session: its stdio as descriptors for
// the caller's poll loop, its end as a descriptor that becomes readable. Destroying it ends the
// process and everything it started (a client that went away leaves nothing running).
class ExecProcess {
 public:
  // Starts `RUNTIME_ARGV --process PROCESS_FILE --pid-file ...` (the OCI runtime's exec; SCRATCH
  // holds the files and is removed with the object).
  static absl::StatusOr<std::unique_ptr<ExecProcess>> Start(std::vector<std::string> runtime_argv,
                                                            base::TempDir scratch,
                                                            const ExecOptions& options);
  ExecProcess(const ExecProcess&) = delete;
  ExecProcess& operator=(const ExecProcess&) = delete;
  ~ExecProcess();

  // Write end of the process's stdin (the terminal with a tty); -1 without stdin.
  int input() const { return input_.Get(); }
  // Its stdout (the terminal with a tty); -1 when not asked for.
  int output() const { return output_.Get(); }
  // Its stderr; -1 with a tty or when not asked for.
  int errors() const { return errors_.Get(); }
  // Readable once the process has ended.
  int ended() const { return ended_.Get(); }

  // End of input: the pipe is closed, a terminal gets ^D.
  void CloseInput();
  absl::Status Resize(uint16_t columns, uint16_t rows);
  // The exit code once ended() is readable (128 + signal when killed).
  absl::StatusOr<int> ExitCode();
  // Ends the exec'd process tree and the runtime's exec.
  void Kill();

 private:
  ExecProcess(base::TempDir scratch, bool tty) : scratch_(std::move(scratch)), tty_(tty) {}
  bool ProcessRuns() const;
  void SignalResizeOnceRunning();

  base::TempDir scratch_;
  bool tty_;
  std::optional<base::ChildProcess> runtime_exec_;
  base::UniqueFd input_, output_, errors_, ended_;
  base::UniqueFd terminal_;  // the master of the terminal, with a tty
  // Sends SIGWINCH again once the exec'd process runs, for resizes that came before (see
  // Resize); uses only ended_ (a pidfd) and the pid file, never runtime_exec_.
  std::mutex resend_mutex_;
  std::thread resize_resender_;
  std::atomic<bool> closing_{false};
};

}  // namespace kapal::runtime
