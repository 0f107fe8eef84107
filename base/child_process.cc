#include "base/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

#include "absl/strings/str_cat.h"
#include "base/files.h"

extern char** environ;

namespace kapal::base {

std::string ExitInfo::Describe() const {
  if (exited) return absl::StrCat("exit code ", exit_code);
  return absl::StrCat("killed by signal ", signal);
}

absl::StatusOr<ChildProcess> ChildProcess::Spawn(const std::vector<std::string>& argv,
                                                 const ChildOptions& options) {
  if (argv.empty()) return absl::InvalidArgumentError("spawn: empty argv");
  // Everything the child needs is prepared before fork: after fork only async-signal-safe calls.
  std::vector<char*> args;
  for (const std::string& arg : argv) args.push_back(const_cast<char*>(arg.c_str()));
  args.push_back(nullptr);
  std::map<std::string, std::string> env_map;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string entry(*e);
    size_t eq = entry.find('=');
    if (eq != std::string::npos) env_map[entry.substr(0, eq)] = entry.substr(eq + 1);
  }
  for (const auto& [key, value] : options.environment) env_map[key] = value;
  std::vector<std::string> env_strings;
  for (const auto& [key, value] : env_map) env_strings.push_back(absl::StrCat(key, "=", value));
  std::vector<char*> env;
  for (std::string& entry : env_strings) env.push_back(entry.data());
  env.push_back(nullptr);

  int out_fd = -1, err_fd = -1;
  if (!options.stdout_path.empty()) {
    out_fd = ::open(options.stdout_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (out_fd < 0) return ErrnoStatus(errno, "open " + options.stdout_path);
  }
  if (!options.stderr_path.empty()) {
    err_fd = ::open(options.stderr_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (err_fd < 0) {
      if (out_fd >= 0) ::close(out_fd);
      return ErrnoStatus(errno, "open " + options.stderr_path);
    }
  }

  pid_t pid = ::fork();
  if (pid < 0) {
    int saved = errno;
    if (out_fd >= 0) ::close(out_fd);
    if (err_fd >= 0) ::close(err_fd);
    return ErrnoStatus(saved, "fork");
  }
  if (pid == 0) {
    // The parent may block signals for its own sigwait loop; the child starts with none blocked.
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    if (options.new_process_group) setpgid(0, 0);
    if (out_fd >= 0) dup2(out_fd, STDOUT_FILENO);
    if (err_fd >= 0) dup2(err_fd, STDERR_FILENO);
    execve(args[0], args.data(), env.data());
    if (errno == ENOENT && argv[0].find('/') == std::string::npos) {
      execvpe(args[0], args.data(), env.data());
    }
    _exit(127);
  }
  if (out_fd >= 0) ::close(out_fd);
  if (err_fd >= 0) ::close(err_fd);
  return ChildProcess(pid, options.new_process_group);
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept
    : pid_(std::exchange(other.pid_, -1)), own_group_(other.own_group_), exit_(other.exit_) {}

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
  if (this != &other) {
    Kill();
    pid_ = std::exchange(other.pid_, -1);
    own_group_ = other.own_group_;
    exit_ = other.exit_;
  }
  return *this;
}

ChildProcess::~ChildProcess() { Kill(); }

std::optional<ExitInfo> ChildProcess::TryReap() {
  if (exit_ || pid_ < 0) return exit_;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    ExitInfo info;
    if (WIFEXITED(status)) {
      info.exited = true;
      info.exit_code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      info.signal = WTERMSIG(status);
    }
    exit_ = info;
  }
  return exit_;
}

bool ChildProcess::Running() { return pid_ > 0 && !TryReap().has_value(); }

absl::Status ChildProcess::Signal(int signal) {
  if (!Running()) return absl::FailedPreconditionError("process has already exited");
  if (::kill(pid_, signal) != 0) return ErrnoStatus(errno, absl::StrCat("kill ", pid_));
  return absl::OkStatus();
}

absl::StatusOr<ExitInfo> ChildProcess::Wait(std::chrono::milliseconds timeout) {
  if (pid_ < 0) return absl::FailedPreconditionError("no process");
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (auto info = TryReap()) return *info;
    if (std::chrono::steady_clock::now() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("process ", pid_, " still running after ", timeout.count(), " ms"));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void ChildProcess::Kill() {
  if (pid_ < 0 || exit_) return;
  if (own_group_) ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  exit_ = ExitInfo{false, -1, SIGKILL};
}

}  // namespace kapal::base
