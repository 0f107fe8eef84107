// kapal-shim: one per container, like CRI-O's conmon. kapald starts it; it creates the container
// with the OCI runtime, outlives kapald (own session, reparented to init), copies the container's
// output into the CRI log, and records the exit status in the bundle when the container ends.
//
// Protocol with kapald, all in the bundle directory (the shim's working directory):
//   - stdout of the shim, until the container is created: one line, "ok CONTAINER_PID SHIM_PID"
//     or "error TEXT";
//   - control.sock: a unix socket taking one-line commands ("reopen" the log, "resize COLS ROWS"
//     of the terminal), answered by "ok" or "error TEXT";
//   - attach.sock: attach sessions (the container's stdin and output; see shim/exit_file.h);
//   - exit: the exit record (shim/exit_file.h), written through a rename, last of all.
// With --infra it is instead the init process of a pod's shared PID namespace (see RunInfra);
// with --namespaces it makes and pins a pod's user namespace and those it owns (namespaces.h).
// No gRPC and no abseil here: the shim is linked statically and stays well under 1 MiB RSS.

#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iterator>
#include <string>
#include <vector>

#include "shim/attach.h"
#include "shim/cri_log.h"
#include "shim/exit_file.h"
#include "shim/namespaces.h"

namespace {

using kapal::shim::CriLogWriter;
using kapal::shim::Stream;

struct Options {
  std::string id;
  std::string bundle;
  std::string runtime;
  std::string runtime_root;
  std::string log_path;
  std::string oom_file;  // memory.oom_control (v1) or memory.events (v2) of the container
  std::string exit_dir;  // where kapald watches for exits: the shim adds a file named by the id
  bool systemd_cgroup = false;
  bool terminal = false;
  bool stdin_open = false;
  bool stdin_once = false;  // the container's stdin closes when the first attach session ends
};

[[noreturn]] void Usage(const char* problem) {
  std::fprintf(stderr,
               "kapal-shim: %s\nusage: kapal-shim --id ID --bundle DIR --runtime BINARY "
               "[--runtime-root DIR] [--systemd-cgroup] --log-path FILE [--oom-file FILE] "
               "[--exit-dir DIR] "
               "[--terminal] [--stdin [--stdin-once]]\n",
               problem);
  std::exit(2);
}

Options ParseOptions(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) Usage(("missing value for " + flag).c_str());
      return argv[++i];
    };
    if (flag == "--id") {
      options.id = value();
    } else if (flag == "--bundle") {
      options.bundle = value();
    } else if (flag == "--runtime") {
      options.runtime = value();
    } else if (flag == "--runtime-root") {
      options.runtime_root = value();
    } else if (flag == "--log-path") {
      options.log_path = value();
    } else if (flag == "--exit-dir") {
      options.exit_dir = value();
    } else if (flag == "--oom-file") {
      options.oom_file = value();
    } else if (flag == "--systemd-cgroup") {
      options.systemd_cgroup = true;
    } else if (flag == "--terminal") {
      options.terminal = true;
    } else if (flag == "--stdin") {
      options.stdin_open = true;
    } else if (flag == "--stdin-once") {
      options.stdin_once = true;
    } else {
      Usage(("unknown flag " + flag).c_str());
    }
  }
  if (options.id.empty() || options.bundle.empty() || options.runtime.empty() ||
      options.log_path.empty()) {
    Usage("--id, --bundle, --runtime and --log-path are required");
  }
  return options;
}

int64_t NowNanos() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000000000 + now.tv_nsec;
}

void WriteAll(int fd, const std::string& text) {
  size_t done = 0;
  while (done < text.size()) {
    ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

std::string ReadSmallFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "";
  std::string text;
  char buffer[512];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof buffer)) > 0) text.append(buffer, static_cast<size_t>(n));
  ::close(fd);
  return text;
}

// Writes FILE through a temporary sibling and a rename, so kapald never reads half; SYNC also
// waits for the disk.
bool WriteFileAtomically(const std::string& path, const std::string& text, bool sync) {
  std::string temporary = path + ".tmp";
  int fd = ::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return false;
  WriteAll(fd, text);
  bool ok = !sync || ::fsync(fd) == 0;
  ::close(fd);
  return ok && ::rename(temporary.c_str(), path.c_str()) == 0;
}

// The kernel's count of OOM kills in the container's memory cgroup ("oom_kill N" in both the v1
// memory.oom_control and the v2 memory.events); -1 when unknown.
long OomKillCount(const std::string& path) {
  if (path.empty()) return -1;
  std::string text = ReadSmallFile(path);
  size_t at = text.find("oom_kill ");
  if (at == std::string::npos) return -1;
  return std::strtol(text.c_str() + at + 9, nullptr, 10);
}

int ListenUnix(const char* name) {
  ::unlink(name);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, name, sizeof address.sun_path - 1);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::listen(fd, 8) != 0) {
    ::close(fd);
    return -1;
  }
  ::chmod(name, 0600);
  return fd;
}

// Receives the terminal's master fd that the runtime sends over the console socket.
int ReceiveConsole(int listener) {
  int connection = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (connection < 0) return -1;
  char data[256];
  iovec io{data, sizeof data};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  msghdr message{};
  message.msg_iov = &io;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof control;
  int fd = -1;
  if (::recvmsg(connection, &message, MSG_CMSG_CLOEXEC) > 0) {
    cmsghdr* header = CMSG_FIRSTHDR(&message);
    if (header != nullptr && header->cmsg_type == SCM_RIGHTS) {
      std::memcpy(&fd, CMSG_DATA(header), sizeof fd);
    }
  }
  ::close(connection);
  return fd;
}

// Runs the OCI runtime's `create`. The container's stdio are the pipes' far ends (or a terminal
// sent over the console socket); output that arrives before `create` returns is the runtime's
// own error text. Returns the runtime's exit status.
int RunCreate(const Options& options, int stdin_fd, int stdout_fd, int stderr_fd) {
  std::vector<std::string> args = {options.runtime};
  if (!options.runtime_root.empty()) {
    args.push_back("--root");
    args.push_back(options.runtime_root);
  }
  if (options.systemd_cgroup) args.push_back("--systemd-cgroup");
  args.insert(args.end(), {"create", "--bundle", options.bundle, "--pid-file",
                           options.bundle + "/" + kapal::shim::kPidFile});
  if (options.terminal) {
    args.push_back("--console-socket");
    args.push_back(kapal::shim::kConsoleSocket);
  }
  args.push_back(options.id);
  std::vector<char*> argv;
  for (std::string& arg : args) argv.push_back(arg.data());
  argv.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    ::dup2(stdin_fd, 0);
    ::dup2(stdout_fd, 1);
    ::dup2(stderr_fd, 2);
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    // kapald's umask (077) would make the container's cgroup directories 0700, which a container
    // in a user namespace cannot even stat where runc binds its v1 hierarchies; runc creates
    // them with the usual 022 as under containerd.
    ::umask(022);
    ::execv(argv[0], argv.data());
    std::fprintf(stderr, "exec %s: %s\n", argv[0], std::strerror(errno));
    ::_exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

std::string Drain(int fd) {
  std::string text;
  char buffer[4096];
  ssize_t n;
  while ((n = ::read(fd, buffer, sizeof buffer)) > 0) text.append(buffer, static_cast<size_t>(n));
  return text;
}

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// Answers one command on the control socket. CONSOLE is the container's terminal, -1 without.
void ServeControl(int listener, CriLogWriter& log, int console) {
  int connection = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
  if (connection < 0) return;
  timeval timeout{1, 0};
  ::setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  char command[64] = {};
  ssize_t n = ::read(connection, command, sizeof command - 1);
  std::string line = n > 0 ? std::string(command, static_cast<size_t>(n)) : "";
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.pop_back();
  std::string reply;
  if (line == "reopen") {
    int error = log.Open();
    reply = error == 0 ? "ok\n" : "error reopen " + log.Path() + ": " + std::strerror(error) + "\n";
  } else if (line.rfind("resize ", 0) == 0) {
    unsigned columns = 0, rows = 0;
    winsize size{};
    if (console < 0) {
      reply = "error the container has no terminal\n";
    } else if (std::sscanf(line.c_str() + 7, "%u %u", &columns, &rows) != 2 || columns > 65535 ||
               rows > 65535) {
      reply = "error resize needs COLUMNS ROWS\n";
    } else {
      size.ws_col = static_cast<unsigned short>(columns);
      size.ws_row = static_cast<unsigned short>(rows);
      reply = ::ioctl(console, TIOCSWINSZ, &size) == 0
                  ? "ok\n"
                  : std::string("error resize: ") + std::strerror(errno) + "\n";
    }
  } else {
    reply = "error unknown command \"" + line + "\"\n";
  }
  WriteAll(connection, reply);
  ::close(connection);
}

// `kapal-shim --infra`: the init process of a pod whose containers share one PID namespace
// (the pause container's job). It detaches like the shim, enters a new PID namespace, and its
// child there (PID 1) reaps orphans until SIGTERM or SIGKILL. Reports "ok PID" with PID as seen
// from outside, so kapald can point containers at /proc/PID/ns/pid.
int RunInfra(int argc, char** argv) {
  pid_t detached = ::fork();
  if (detached < 0) {
    std::printf("error fork: %s\n", std::strerror(errno));
    return 1;
  }
  if (detached > 0) return 0;
  ::setsid();
  // A pod with a user namespace (kapal-shim --namespaces pinned it beside the others) gets a PID
  // namespace owned by it: its containers, which join the user namespace first, could not
  // enter one that the host's user namespace owns.
  if (argc == 3) {
    int userns = ::open((std::string(argv[2]) + "/user").c_str(), O_RDONLY | O_CLOEXEC);
    if (userns >= 0) {
      if (::setns(userns, CLONE_NEWUSER) != 0) {
        std::printf("error enter the pod's user namespace: %s\n", std::strerror(errno));
        return 1;
      }
      ::close(userns);
    }
  }
  if (::unshare(CLONE_NEWPID) != 0) {
    std::printf("error unshare of a PID namespace: %s\n", std::strerror(errno));
    return 1;
  }
  pid_t init = ::fork();  // the first child in the new namespace is its PID 1
  if (init < 0) {
    std::printf("error fork: %s\n", std::strerror(errno));
    return 1;
  }
  if (init > 0) {
    std::printf("ok %d\n", static_cast<int>(init));
    return 0;
  }
  int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  ::dup2(null_fd, 0);
  ::dup2(null_fd, 1);
  ::dup2(null_fd, 2);
  ::prctl(PR_SET_NAME, "kapal-infra");
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGCHLD);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  ::sigprocmask(SIG_BLOCK, &signals, nullptr);
  for (;;) {
    int received = 0;
    ::sigwait(&signals, &received);
    if (received == SIGTERM || received == SIGINT) return 0;
    while (::waitpid(-1, nullptr, WNOHANG) > 0) {
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  // `--infra [POD_DIR]`: the pod dir only names the process (kapald finds it by it).
  if ((argc == 2 || argc == 3) && std::strcmp(argv[1], "--infra") == 0) {
    return RunInfra(argc, argv);
  }
  if (argc >= 2 && std::strcmp(argv[1], "--namespaces") == 0) {
    return kapal::shim::PinNamespaces(argc, argv);
  }
  Options options = ParseOptions(argc, argv);
  if (::chdir(options.bundle.c_str()) != 0) {
    std::printf("error chdir %s: %s\n", options.bundle.c_str(), std::strerror(errno));
    return 1;
  }
  // SIGCHLD arrives through a signalfd; the runtime's children inherit an empty mask.
  sigset_t child_signal;
  sigemptyset(&child_signal);
  sigaddset(&child_signal, SIGCHLD);
  sigaddset(&child_signal, SIGPIPE);
  ::sigprocmask(SIG_BLOCK, &child_signal, nullptr);

  // Leave kapald: the parent returns at once (kapald reaps it), the child starts a session of
  // its own and, reparented to init, lives on when kapald stops or crashes.
  pid_t detached = ::fork();
  if (detached < 0) {
    std::printf("error fork: %s\n", std::strerror(errno));
    return 1;
  }
  if (detached > 0) return 0;
  ::setsid();
  // The container's process is the runtime's grandchild; as a subreaper the shim becomes its
  // parent when the runtime exits, and so can wait for it.
  ::prctl(PR_SET_CHILD_SUBREAPER, 1);
  // kapald learns the shim's pid from the report below, and after a crash of its own from here.
  WriteFileAtomically(kapal::shim::kShimPidFile, std::to_string(::getpid()), /*sync=*/false);
  int report_fd = ::dup(1);  // kapald reads "ok PID" / "error TEXT" here
  int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  int shim_log = ::open(kapal::shim::kShimLog, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  ::dup2(null_fd, 0);
  ::dup2(null_fd, 1);
  ::dup2(shim_log >= 0 ? shim_log : null_fd, 2);
  ::fcntl(report_fd, F_SETFD, FD_CLOEXEC);
  auto report = [&](const std::string& line) {
    if (report_fd < 0) return;
    WriteAll(report_fd, line + "\n");
    ::close(report_fd);
    report_fd = -1;
  };

  CriLogWriter log(options.log_path);
  if (int error = log.Open(); error != 0) {
    report("error open log " + options.log_path + ": " + std::strerror(error));
    return 1;
  }

  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  int in_pipe[2] = {-1, -1};
  int console_listener = -1;
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    report(std::string("error pipe: ") + std::strerror(errno));
    return 1;
  }
  // A container asking for stdin gets a pipe that stays open (nothing is attached yet), so it
  // waits for input instead of reading end-of-file at once.
  if (options.stdin_open && ::pipe2(in_pipe, O_CLOEXEC) != 0) {
    report(std::string("error pipe: ") + std::strerror(errno));
    return 1;
  }
  if (options.terminal) {
    console_listener = ListenUnix(kapal::shim::kConsoleSocket);
    if (console_listener < 0) {
      report(std::string("error console socket: ") + std::strerror(errno));
      return 1;
    }
  }
  int status = RunCreate(options, in_pipe[0] >= 0 ? in_pipe[0] : null_fd, out_pipe[1], err_pipe[1]);
  if (in_pipe[0] >= 0) ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  SetNonBlocking(out_pipe[0]);
  SetNonBlocking(err_pipe[0]);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    std::string text = Drain(err_pipe[0]) + Drain(out_pipe[0]);
    while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
    for (char& c : text) {
      if (c == '\n') c = ' ';
    }
    report("error " + options.runtime + " create: " + (text.empty() ? "failed" : text));
    return 1;
  }
  // The runtime made the container's cgroup during create: count OOM kills from here on.
  long oom_before = OomKillCount(options.oom_file);
  std::string pid_text = ReadSmallFile(kapal::shim::kPidFile);
  pid_t container_pid = static_cast<pid_t>(std::strtol(pid_text.c_str(), nullptr, 10));
  if (container_pid <= 0) {
    report("error " + options.runtime + " create left no pid file");
    return 1;
  }
  int console_fd = -1;
  if (options.terminal) {
    console_fd = ReceiveConsole(console_listener);
    ::close(console_listener);
    ::unlink(kapal::shim::kConsoleSocket);
    if (console_fd < 0) {
      report("error no terminal received from " + options.runtime);
      return 1;
    }
    SetNonBlocking(console_fd);
  }
  int control = ListenUnix(kapal::shim::kControlSocket);
  int container_stdin = -1;
  if (options.stdin_open) container_stdin = options.terminal ? console_fd : in_pipe[1];
  kapal::shim::AttachHub attach(ListenUnix(kapal::shim::kAttachSocket), container_stdin,
                                options.stdin_once, options.terminal);
  int child_events = ::signalfd(-1, &child_signal, SFD_CLOEXEC | SFD_NONBLOCK);
  report("ok " + std::to_string(container_pid) + " " + std::to_string(::getpid()));

  // Copy output until the container has exited and its output is drained.
  int output_fds[3] = {out_pipe[0], err_pipe[0], console_fd};
  bool exited = false;
  int wait_status = 0;
  int64_t drain_deadline = 0;
  char buffer[16 * 1024];
  std::vector<pollfd> fds;
  for (;;) {
    fds.clear();
    for (int output : output_fds) {
      if (output >= 0) fds.push_back({output, POLLIN, 0});
    }
    bool outputs_open = !fds.empty();
    if (control >= 0) fds.push_back({control, POLLIN, 0});
    fds.push_back({child_events, POLLIN, 0});
    size_t first_attach_fd = fds.size();  // a terminal shows up twice: output, and stdin here
    attach.AddPollFds(fds);
    if (exited && (!outputs_open || NowNanos() >= drain_deadline)) break;
    int timeout = exited ? 50 : -1;
    if (::poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) break;

    for (size_t slot = 0; slot < fds.size(); ++slot) {
      const pollfd& polled = fds[slot];
      if (polled.revents == 0) continue;
      if (slot >= first_attach_fd) {
        attach.Handle(polled);
        continue;
      }
      int* output = std::find(std::begin(output_fds), std::end(output_fds), polled.fd);
      if (output != std::end(output_fds)) {
        ssize_t n = ::read(*output, buffer, sizeof buffer);
        if (n > 0) {
          bool is_stderr = output == &output_fds[1];
          log.Write(is_stderr ? Stream::kStderr : Stream::kStdout, buffer, static_cast<size_t>(n));
          attach.Broadcast(is_stderr ? kapal::shim::kAttachStderr : kapal::shim::kAttachStdout,
                           buffer, static_cast<size_t>(n));
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
          // EOF (EIO on a terminal whose last writer closed); the terminal stays open for the
          // attach hub until the end.
          if (*output != console_fd) ::close(*output);
          *output = -1;
        }
      } else if (polled.fd == control) {
        ServeControl(control, log, console_fd);
      } else if (polled.fd == child_events) {
        signalfd_siginfo info;
        while (::read(child_events, &info, sizeof info) > 0) {
        }
        int child_status = 0;
        pid_t pid;
        while ((pid = ::waitpid(-1, &child_status, WNOHANG)) > 0) {
          if (pid == container_pid && !exited) {
            exited = true;
            wait_status = child_status;
            // Processes the container left behind may hold its output open; give the pipes a
            // moment to drain, not forever.
            drain_deadline = NowNanos() + 500 * 1000000LL;
          }
        }
      }
    }
  }
  attach.CloseAll();
  log.Flush();

  kapal::shim::ExitRecord record;
  record.finished_at_ns = NowNanos();
  if (WIFEXITED(wait_status)) {
    record.exit_code = WEXITSTATUS(wait_status);
  } else if (WIFSIGNALED(wait_status)) {
    record.signal = WTERMSIG(wait_status);
    record.exit_code = 128 + record.signal;
  }
  long oom_after = OomKillCount(options.oom_file);
  record.oom_killed = oom_before >= 0 && oom_after > oom_before;
  if (control >= 0) {
    ::close(control);
    ::unlink(kapal::shim::kControlSocket);
  }
  if (!WriteFileAtomically(kapal::shim::kExitFile, kapal::shim::FormatExitRecord(record),
                           /*sync=*/true)) {
    std::fprintf(stderr, "kapal-shim: cannot write exit file: %s\n", std::strerror(errno));
    return 1;
  }
  // Tell kapald (it watches the exit dir); the record itself is the file in the bundle, so a
  // kapald that is down now reads it when it starts.
  if (!options.exit_dir.empty()) {
    int note = ::open((options.exit_dir + "/" + options.id).c_str(),
                      O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (note >= 0) ::close(note);
  }
  return 0;
}
