#include "runtime/exec_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/files.h"
#include "runtime/oci_runtime.h"

namespace kapal::runtime {

namespace {

constexpr char kPidFile[] = "pid";

struct Pipe {
  base::UniqueFd read, write;
};

absl::StatusOr<Pipe> MakePipe() {
  int ends[2];
  if (::pipe2(ends, O_CLOEXEC) != 0) return base::ErrnoStatus(errno, "pipe");
  return Pipe{base::UniqueFd(ends[0]), base::UniqueFd(ends[1])};
}

// A new terminal pair: the master stays here, the slave becomes the runtime's stdio.
absl::StatusOr<Pipe> MakeTerminal() {
  base::UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!master) return base::ErrnoStatus(errno, "open a terminal");
  if (::grantpt(master.Get()) != 0 || ::unlockpt(master.Get()) != 0) {
    return base::ErrnoStatus(errno, "unlock the terminal");
  }
  char name[64];
  if (::ptsname_r(master.Get(), name, sizeof name) != 0) return base::ErrnoStatus(errno, "ptsname");
  base::UniqueFd slave(::open(name, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!slave) return base::ErrnoStatus(errno, absl::StrCat("open ", name));
  return Pipe{std::move(master), std::move(slave)};
}

}  // namespace

absl::StatusOr<std::unique_ptr<ExecProcess>> ExecProcess::Start(
    std::vector<std::string> runtime_argv, base::TempDir scratch, const ExecOptions& options) {
  std::unique_ptr<ExecProcess> process(new ExecProcess(std::move(scratch), options.tty));
  runtime_argv.insert(runtime_argv.end() - 1, {"--pid-file", process->scratch_.Join(kPidFile)});
  base::UniqueFd null_fd(::open("/dev/null", O_RDWR | O_CLOEXEC));
  if (!null_fd) return base::ErrnoStatus(errno, "open /dev/null");
  base::ChildOptions child;
  child.umask = kContainerUmask;
  base::UniqueFd child_stdin, child_stdout, child_stderr;
  if (options.tty) {
    // The runtime's exec with a terminal copies between its own terminal (this one's slave) and
    // the container's, and passes a size change on when it gets SIGWINCH as the session leader.
    absl::StatusOr<Pipe> terminal = MakeTerminal();
    if (!terminal.ok()) return terminal.status();
    process->terminal_ = std::move(terminal->read);
    child.stdin_fd = child.stdout_fd = child.stderr_fd = terminal->write.Get();
    child.controlling_terminal = true;
    child_stdin = std::move(terminal->write);
    if (options.stdin) process->input_.Reset(::dup(process->terminal_.Get()));
    if (options.stdout) process->output_.Reset(::dup(process->terminal_.Get()));
  } else {
    child.stdin_fd = child.stdout_fd = child.stderr_fd = null_fd.Get();
    // A pipe per stream asked for: one end becomes the runtime's stdio, the other ours.
    auto connect = [](bool wanted, bool child_reads, base::UniqueFd& child_end, int& child_fd,
                      base::UniqueFd& ours) -> absl::Status {
      if (!wanted) return absl::OkStatus();
      absl::StatusOr<Pipe> pipe = MakePipe();
      if (!pipe.ok()) return pipe.status();
      child_end = std::move(child_reads ? pipe->read : pipe->write);
      ours = std::move(child_reads ? pipe->write : pipe->read);
      child_fd = child_end.Get();
      return absl::OkStatus();
    };
    if (absl::Status made =
            connect(options.stdin, true, child_stdin, child.stdin_fd, process->input_);
        !made.ok()) {
      return made;
    }
    if (absl::Status made =
            connect(options.stdout, false, child_stdout, child.stdout_fd, process->output_);
        !made.ok()) {
      return made;
    }
    if (absl::Status made =
            connect(options.stderr, false, child_stderr, child.stderr_fd, process->errors_);
        !made.ok()) {
      return made;
    }
  }
  for (const base::UniqueFd* fd : {&process->input_, &process->output_, &process->errors_}) {
    if (fd->Valid()) ::fcntl(fd->Get(), F_SETFL, ::fcntl(fd->Get(), F_GETFL) | O_NONBLOCK);
  }
  absl::StatusOr<base::ChildProcess> spawned = base::ChildProcess::Spawn(runtime_argv, child);
  if (!spawned.ok()) return spawned.status();
  process->runtime_exec_.emplace(std::move(*spawned));
  process->ended_.Reset(
      static_cast<int>(::syscall(SYS_pidfd_open, process->runtime_exec_->Pid(), 0)));
  if (!process->ended_) return base::ErrnoStatus(errno, "pidfd_open");
  return process;
}

ExecProcess::~ExecProcess() {
  closing_ = true;
  {
    std::lock_guard lock(resend_mutex_);
    if (resize_resender_.joinable()) resize_resender_.join();
  }
  Kill();
}

void ExecProcess::CloseInput() {
  if (!input_) return;
  if (tty_) {
    char end_of_file = '\x04';
    ssize_t ignored = ::write(input_.Get(), &end_of_file, 1);
    (void)ignored;
  }
  input_.Reset();
}

absl::Status ExecProcess::Resize(uint16_t columns, uint16_t rows) {
  if (!terminal_) return absl::FailedPreconditionError("the exec has no terminal to resize");
  winsize size{};
  size.ws_col = columns;
  size.ws_row = rows;
  if (::ioctl(terminal_.Get(), TIOCSWINSZ, &size) != 0) {
    return base::ErrnoStatus(errno, "resize the terminal");
  }
  // The kernel's SIGWINCH reaches the runtime's exec, which copies the size to the container's
  // console; one that arrives before the runtime listens for it is lost (clients resize right
  // after the session opens, while a slow runtime still starts). So until the exec'd process
  // runs (its pid file is written after the runtime set up its console), a thread waits for
  // that and signals the runtime again. The caller is answered at once: the Docker CLI only
  // starts listening for the window's changes after its first resize is answered, so holding
  // that answer until the process runs lost a person's (or a test's) early resize.
  if (runtime_exec_ && !ProcessRuns()) {
    std::lock_guard lock(resend_mutex_);
    if (!resize_resender_.joinable()) {
      resize_resender_ = std::thread([this] { SignalResizeOnceRunning(); });
    }
  }
  return absl::OkStatus();
}

bool ExecProcess::ProcessRuns() const {
  return ::access(scratch_.Join(kPidFile).c_str(), F_OK) == 0;
}

void ExecProcess::SignalResizeOnceRunning() {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!ProcessRuns()) {
    if (closing_ || std::chrono::steady_clock::now() >= deadline) return;
    pollfd ended{ended_.Get(), POLLIN, 0};
    if (::poll(&ended, 1, 10) > 0) return;  // the runtime's exec is over: nothing to resize
  }
  // Through the pidfd, so a runtime that has meanwhile ended and been reaped is never mistaken
  // for another process with its pid.
  ::syscall(SYS_pidfd_send_signal, ended_.Get(), SIGWINCH, nullptr, 0);
}

absl::StatusOr<int> ExecProcess::ExitCode() {
  if (!runtime_exec_) return absl::FailedPreconditionError("the exec did not start");
  absl::StatusOr<base::ExitInfo> info = runtime_exec_->Wait(std::chrono::seconds(5));
  if (!info.ok()) return info.status();
  return info->exited ? info->exit_code : 128 + info->signal;
}

void ExecProcess::Kill() {
  if (!runtime_exec_) return;
  if (runtime_exec_->Running()) {
    // The exec'd process and what it started first, while the runtime's exec still waits for
    // it (so it is reaped), then the runtime's exec itself.
    absl::StatusOr<std::string> pid = base::ReadFile(scratch_.Join(kPidFile));
    int number = 0;
    if (pid.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(*pid), &number) && number > 0) {
      base::KillProcessTree(number);
    }
    (void)runtime_exec_->Wait(std::chrono::seconds(2));
  }
  runtime_exec_->Kill();
}

}  // namespace kapal::runtime
