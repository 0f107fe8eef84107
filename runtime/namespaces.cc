#include "runtime/namespaces.h"

#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/files.h"
#include "base/unique_fd.h"

namespace kapal::runtime {

namespace {

constexpr const char* kKinds[] = {"net", "ipc", "uts"};

}  // namespace

bool IsMountPoint(const std::string& path) {
  struct stat self {
  }, parent{};
  if (::lstat(path.c_str(), &self) != 0) return false;
  size_t slash = path.rfind('/');
  std::string up(slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash));
  if (::stat(up.c_str(), &parent) != 0) return false;
  if (self.st_dev != parent.st_dev) return true;
  // A bind mount of a file (a namespace pin) stays on "another" device too (nsfs), but a bind
  // of the same filesystem does not: look it up in the mount table then.
  std::string table;
  if (absl::StatusOr<std::string> text = base::ReadFile("/proc/self/mountinfo"); text.ok()) {
    table = *text;
  }
  return table.find(absl::StrCat(" ", path, " ")) != std::string::npos;
}

absl::Status PinNamespaces(const std::string& dir, const PodNamespaces& which,
                           const std::string& hostname) {
  int flags = (which.network ? CLONE_NEWNET : 0) | (which.ipc ? CLONE_NEWIPC : 0) |
              (which.uts ? CLONE_NEWUTS : 0);
  if (flags == 0) return absl::OkStatus();
  std::vector<std::string> targets;
  bool wanted[3] = {which.network, which.ipc, which.uts};
  for (int i = 0; i < 3; ++i) {
    std::string target = absl::StrCat(dir, "/", kKinds[i]);
    if (!wanted[i]) continue;
    base::UniqueFd file(::open(target.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0400));
    if (!file) return base::ErrnoStatus(errno, "create " + target);
    targets.push_back(target);
  }

  // A child enters fresh namespaces and waits while the parent bind-mounts them. kapald has
  // many threads, so after fork the child makes only system calls, all prepared beforehand.
  int ready[2], proceed[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) return base::ErrnoStatus(errno, "pipe");
  base::UniqueFd ready_read(ready[0]), ready_write(ready[1]);
  if (::pipe2(proceed, O_CLOEXEC) != 0) return base::ErrnoStatus(errno, "pipe");
  base::UniqueFd proceed_read(proceed[0]), proceed_write(proceed[1]);
  const char* name = hostname.c_str();
  size_t name_length = hostname.size();
  bool set_hostname = which.uts && !hostname.empty();
  // The new network namespace's loopback comes up here, as containerd's built-in loopback
  // network does it, so no CNI loopback plugin needs to be run for it.
  ifreq loopback{};
  std::memcpy(loopback.ifr_name, "lo", 3);
  bool bring_up_loopback = which.network;
  pid_t pid = ::fork();
  if (pid < 0) return base::ErrnoStatus(errno, "fork");
  if (pid == 0) {
    char status = 0;
    if (::unshare(flags) != 0) status = 1;
    if (status == 0 && bring_up_loopback) {
      int socket_fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      if (socket_fd < 0 || ::ioctl(socket_fd, SIOCGIFFLAGS, &loopback) != 0) {
        status = 4;
      } else {
        loopback.ifr_flags = static_cast<short>(loopback.ifr_flags | IFF_UP);
        if (::ioctl(socket_fd, SIOCSIFFLAGS, &loopback) != 0) status = 4;
      }
      if (socket_fd >= 0) ::close(socket_fd);
    }
    if (status == 0 && set_hostname && ::sethostname(name, name_length) != 0) status = 2;
    (void)!::write(ready_write.Get(), &status, 1);
    char go;
    (void)!::read(proceed_read.Get(), &go, 1);
    ::_exit(0);
  }
  ready_write.Reset();
  proceed_read.Reset();
  // Both sides wait for a byte, never for end-of-file: a helper forked meanwhile by another
  // thread holds copies of these pipes, so EOF could come late or, crossed, never.
  char status = 3;
  pollfd ready_poll{ready_read.Get(), POLLIN, 0};
  if (::poll(&ready_poll, 1, 10000) == 1) (void)!::read(ready_read.Get(), &status, 1);
  absl::Status result;
  if (status == 1) {
    result = absl::InternalError("unshare of the pod's namespaces failed");
  } else if (status == 4) {
    result = absl::InternalError("cannot bring up the loopback device of the pod's network");
  } else if (status == 2) {
    result = absl::InvalidArgumentError(absl::StrCat("cannot set hostname \"", hostname, "\""));
  } else if (status != 0) {
    result = absl::InternalError("the namespace helper process died");
  }
  std::vector<std::string> mounted;
  for (int i = 0; i < 3 && result.ok(); ++i) {
    if (!wanted[i]) continue;
    std::string source = absl::StrCat("/proc/", pid, "/ns/", kKinds[i]);
    std::string target = absl::StrCat(dir, "/", kKinds[i]);
    if (::mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
      result = base::ErrnoStatus(errno, absl::StrCat("bind ", source, " on ", target));
    } else {
      mounted.push_back(target);
    }
  }
  char go = 1;
  (void)!::write(proceed_write.Get(), &go, 1);
  proceed_write.Reset();
  if (status == 3) ::kill(pid, SIGKILL);  // it never answered
  int wait_status;
  while (::waitpid(pid, &wait_status, 0) < 0 && errno == EINTR) {
  }
  if (!result.ok()) {
    for (const std::string& target : mounted) ::umount2(target.c_str(), MNT_DETACH);
    for (const std::string& target : targets) ::unlink(target.c_str());
  }
  return result;
}

absl::Status PinPidNamespace(const std::string& dir, int infra_pid) {
  std::string source = absl::StrCat("/proc/", infra_pid, "/ns/pid");
  std::string target = dir + "/pid";
  base::UniqueFd file(::open(target.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0400));
  if (!file) return base::ErrnoStatus(errno, "create " + target);
  if (::mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) != 0) {
    absl::Status status = base::ErrnoStatus(errno, absl::StrCat("bind ", source, " on ", target));
    ::unlink(target.c_str());
    return status;
  }
  return absl::OkStatus();
}

bool InPinnedPidNamespace(const std::string& dir, int pid) {
  struct stat pinned {
  }, process{};
  if (pid <= 0 || ::stat((dir + "/pid").c_str(), &pinned) != 0) return false;
  if (::stat(absl::StrCat("/proc/", pid, "/ns/pid").c_str(), &process) != 0) return false;
  return pinned.st_ino == process.st_ino && pinned.st_dev == process.st_dev;
}

absl::Status UnpinNamespaces(const std::string& dir) {
  absl::Status result;
  for (const char* kind : {"net", "ipc", "uts", "pid"}) {
    std::string target = absl::StrCat(dir, "/", kind);
    if (::umount2(target.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
      result.Update(base::ErrnoStatus(errno, "umount " + target));
      continue;
    }
    if (::unlink(target.c_str()) != 0 && errno != ENOENT) {
      result.Update(base::ErrnoStatus(errno, "remove " + target));
    }
  }
  return result;
}

absl::Status InNetworkNamespace(const std::string& netns_path, const std::function<void()>& work) {
  base::UniqueFd netns(::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!netns) return base::ErrnoStatus(errno, "open " + netns_path);
  absl::Status entered;
  std::thread worker([&] {
    if (::setns(netns.Get(), CLONE_NEWNET) != 0) {
      entered = base::ErrnoStatus(errno, "enter network namespace " + netns_path);
      return;
    }
    work();
  });
  worker.join();
  return entered;
}

}  // namespace kapal::runtime
