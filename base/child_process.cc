#include "base/child_process.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <optional>
#include <set>
#include <string_view>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/files.h"
#include "base/unique_fd.h"

extern char** environ;

namespace kapal::base {

namespace {

// The child as ChildOptions ask (signals unblocked, own group, the descriptors), or nullopt when
// the binary could not be run.
std::optional<pid_t> SpawnWithoutFork(const std::vector<char*>& args, const std::vector<char*>& env,
                                      const ChildOptions& options, int out_fd, int err_fd) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
  if (posix_spawn_file_actions_init(&actions) != 0) return std::nullopt;
  if (posix_spawnattr_init(&attributes) != 0) {
    posix_spawn_file_actions_destroy(&actions);
    return std::nullopt;
  }
  sigset_t none;
  sigemptyset(&none);
  short flags = POSIX_SPAWN_SETSIGMASK;
  posix_spawnattr_setsigmask(&attributes, &none);
  if (options.new_process_group) {
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(&attributes, 0);
  }
  posix_spawnattr_setflags(&attributes, flags);
  // Same order as the fork path: the paths first, explicit descriptors win.
  if (out_fd >= 0) posix_spawn_file_actions_adddup2(&actions, out_fd, STDOUT_FILENO);
  if (err_fd >= 0) posix_spawn_file_actions_adddup2(&actions, err_fd, STDERR_FILENO);
  if (options.stdin_fd >= 0) posix_spawn_file_actions_adddup2(&actions, options.stdin_fd, 0);
  if (options.stdout_fd >= 0) posix_spawn_file_actions_adddup2(&actions, options.stdout_fd, 1);
  if (options.stderr_fd >= 0) posix_spawn_file_actions_adddup2(&actions, options.stderr_fd, 2);
  pid_t pid = -1;
  bool search_path = std::string_view(args[0]).find('/') == std::string_view::npos;
  int failed = search_path
                   ? posix_spawnp(&pid, args[0], &actions, &attributes, args.data(), env.data())
                   : posix_spawn(&pid, args[0], &actions, &attributes, args.data(), env.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (failed != 0) return std::nullopt;
  return pid;
}

}  // namespace

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

  // posix_spawn (glibc's clone with CLONE_VM | CLONE_VFORK) spares the copy of kapald's page
  // tables that fork makes for every runc and CNI plugin run, and its teardown at exec. A
  // terminal session needs an ioctl between fork and exec (a umask a call), and a binary that
  // cannot be run goes the fork way too, so that it ends as before: exit code 127, as a shell's
  // would.
  if (!options.controlling_terminal && !options.umask.has_value()) {
    std::optional<pid_t> spawned = SpawnWithoutFork(args, env, options, out_fd, err_fd);
    if (spawned.has_value()) {
      if (out_fd >= 0) ::close(out_fd);
      if (err_fd >= 0) ::close(err_fd);
      return ChildProcess(*spawned, options.new_process_group);
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
    if (options.controlling_terminal) {
      setsid();
    } else if (options.new_process_group) {
      setpgid(0, 0);
    }
    if (out_fd >= 0) dup2(out_fd, STDOUT_FILENO);
    if (err_fd >= 0) dup2(err_fd, STDERR_FILENO);
    if (options.stdin_fd >= 0) dup2(options.stdin_fd, STDIN_FILENO);
    if (options.stdout_fd >= 0) dup2(options.stdout_fd, STDOUT_FILENO);
    if (options.stderr_fd >= 0) dup2(options.stderr_fd, STDERR_FILENO);
    if (options.controlling_terminal) ioctl(STDIN_FILENO, TIOCSCTTY, 0);
    if (options.umask.has_value()) ::umask(*options.umask);
    execve(args[0], args.data(), env.data());
    if (errno == ENOENT && argv[0].find('/') == std::string::npos) {
      execvpe(args[0], args.data(), env.data());
    }
    _exit(127);
  }
  if (out_fd >= 0) ::close(out_fd);
  if (err_fd >= 0) ::close(err_fd);
  return ChildProcess(pid, options.new_process_group || options.controlling_terminal);
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
  // A pidfd becomes readable the moment the child is a zombie, so the wait ends then and not at
  // the next tick of a sleep loop (a command's pipes close a moment before it can be reaped,
  // so a loop cost every command a few milliseconds). The loop stays for kernels before 5.3.
  UniqueFd exited(static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0)));
  auto pause = std::chrono::microseconds(100);
  for (;;) {
    if (auto info = TryReap()) return *info;
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("process ", pid_, " still running after ", timeout.count(), " ms"));
    }
    if (exited) {
      pollfd ready{exited.Get(), POLLIN, 0};
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
      (void)::poll(&ready, 1, static_cast<int>(std::max<int64_t>(left.count(), 1)));
    } else {
      std::this_thread::sleep_for(pause);
      pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(5));
    }
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

namespace kapal::base {

std::string CommandResult::Describe() const {
  std::string text = errors.empty() ? output : errors;
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
  std::string how = exit.exited ? absl::StrCat("exit code ", exit.exit_code) : exit.Describe();
  return text.empty() ? how : absl::StrCat(how, ": ", text);
}

namespace {

// AT_DEADLINE ends what the command started (so that the command itself can reap it), then the
// command gets a moment to finish before it is killed.
void EndAtDeadline(ChildProcess& child, const std::function<void()>& at_deadline) {
  if (at_deadline) {
    at_deadline();
    (void)child.Wait(std::chrono::seconds(2));
  }
  child.Kill();
}

std::vector<std::pair<pid_t, pid_t>> ProcessParents() {
  std::vector<std::pair<pid_t, pid_t>> parents;
  DIR* proc = ::opendir("/proc");
  if (proc == nullptr) return parents;
  while (dirent* entry = ::readdir(proc)) {
    pid_t pid = 0;
    if (!absl::SimpleAtoi(entry->d_name, &pid)) continue;
    absl::StatusOr<std::string> stat = ReadFile(absl::StrCat("/proc/", pid, "/stat"));
    if (!stat.ok()) continue;
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses; the last ')' ends it.
    size_t close = stat->rfind(')');
    if (close == std::string::npos || close + 4 > stat->size()) continue;
    char state = (*stat)[close + 2];
    pid_t parent = 0;
    size_t ppid_at = close + 4;
    size_t ppid_end = stat->find(' ', ppid_at);
    if (!absl::SimpleAtoi(stat->substr(ppid_at, ppid_end - ppid_at), &parent)) continue;
    if (state != 'Z') parents.emplace_back(pid, parent);
  }
  ::closedir(proc);
  return parents;
}

}  // namespace

void MarkInheritedDescriptorsCloseOnExec() {
  if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
  // Kernels before 5.11 know no CLOSE_RANGE_CLOEXEC: one descriptor at a time.
  DIR* open_fds = ::opendir("/proc/self/fd");
  if (open_fds == nullptr) return;
  int listing_fd = ::dirfd(open_fds);
  while (dirent* entry = ::readdir(open_fds)) {
    int fd = -1;
    if (!absl::SimpleAtoi(entry->d_name, &fd) || fd < 3 || fd == listing_fd) continue;
    int flags = ::fcntl(fd, F_GETFD);
    if (flags >= 0) ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
  ::closedir(open_fds);
}

void KillProcessTree(pid_t root) {
  // Leaves first, a few rounds: a parent that waits for its child (a shell) reaps it, so no
  // zombie is left to an init that never reaps; what is left at the end gets SIGKILL at once.
  for (int round = 0; round < 20; ++round) {
    std::vector<std::pair<pid_t, pid_t>> parents = ProcessParents();
    std::set<pid_t> tree = {root};
    for (bool grew = true; grew;) {
      grew = false;
      for (const auto& [pid, parent] : parents) {
        if (tree.count(parent) > 0 && tree.insert(pid).second) grew = true;
      }
    }
    std::set<pid_t> alive;
    for (const auto& [pid, parent] : parents) {
      if (tree.count(pid) > 0) alive.insert(pid);
    }
    if (alive.empty()) return;
    bool last = round == 19;
    for (pid_t pid : alive) {
      bool leaf = std::none_of(parents.begin(), parents.end(), [&](const auto& entry) {
        return entry.second == pid && alive.count(entry.first) > 0;
      });
      if (leaf || last) ::kill(pid, SIGKILL);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

absl::StatusOr<CommandResult> RunCommand(const std::vector<std::string>& argv,
                                         const std::string& input,
                                         std::chrono::milliseconds timeout, ChildOptions options,
                                         const std::function<void()>& at_deadline) {
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (::pipe2(in_pipe, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe");
  UniqueFd in_read(in_pipe[0]), in_write(in_pipe[1]);
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe");
  UniqueFd out_read(out_pipe[0]), out_write(out_pipe[1]);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) return ErrnoStatus(errno, "pipe");
  UniqueFd err_read(err_pipe[0]), err_write(err_pipe[1]);
  options.stdin_fd = in_read.Get();
  options.stdout_fd = out_write.Get();
  options.stderr_fd = err_write.Get();
  absl::StatusOr<ChildProcess> child = ChildProcess::Spawn(argv, options);
  if (!child.ok()) return child.status();
  in_read.Reset();
  out_write.Reset();
  err_write.Reset();
  for (int fd : {in_write.Get(), out_read.Get(), err_read.Get()}) {
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  }
  if (input.empty()) in_write.Reset();

  CommandResult result;
  size_t written = 0;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  char buffer[16384];
  while (out_read || err_read) {
    pollfd fds[3];
    int count = 0;
    int out_slot = -1, err_slot = -1, in_slot = -1;
    if (out_read) out_slot = count, fds[count++] = {out_read.Get(), POLLIN, 0};
    if (err_read) err_slot = count, fds[count++] = {err_read.Get(), POLLIN, 0};
    if (in_write) in_slot = count, fds[count++] = {in_write.Get(), POLLOUT, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      EndAtDeadline(*child, at_deadline);
      return absl::DeadlineExceededError(
          absl::StrCat(argv[0], " did not finish within ", timeout.count(), " ms"));
    }
    if (::poll(fds, count, static_cast<int>(left.count())) < 0 && errno != EINTR) {
      return ErrnoStatus(errno, "poll");
    }
    auto drain = [&](int slot, UniqueFd& fd, std::string& into) {
      if (slot < 0 || fds[slot].revents == 0) return;
      ssize_t n = ::read(fd.Get(), buffer, sizeof buffer);
      if (n > 0) {
        into.append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        fd.Reset();
      }
    };
    drain(out_slot, out_read, result.output);
    drain(err_slot, err_read, result.errors);
    if (in_slot >= 0 && fds[in_slot].revents != 0) {
      ssize_t n = ::write(in_write.Get(), input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if (n < 0 && errno != EAGAIN && errno != EINTR) written = input.size();
      if (written >= input.size()) in_write.Reset();
    }
  }
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  absl::StatusOr<ExitInfo> exit = child->Wait(std::max(left, std::chrono::milliseconds(1)));
  if (!exit.ok()) {
    EndAtDeadline(*child, at_deadline);
    return absl::DeadlineExceededError(
        absl::StrCat(argv[0], " did not finish within ", timeout.count(), " ms"));
  }
  result.exit = *exit;
  return result;
}

}  // namespace kapal::base
