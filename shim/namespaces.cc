#include "shim/namespaces.h"

#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace kapal::shim {

namespace {

struct Pin {
  const char* kind;  // the name under /proc/PID/ns and DIR
  int flag;
};

bool WriteFile(const std::string& path, const std::string& text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  return ok;
}

// "0 65536 65536,70000 1 1" -> one range a line, as /proc/PID/uid_map takes it.
std::string MapFile(const std::string& argument) {
  std::string text = argument;
  for (char& c : text) {
    if (c == ',') c = '\n';
  }
  return text + "\n";
}

int Fail(const std::string& what) {
  std::printf("error %s: %s\n", what.c_str(), std::strerror(errno));
  return 1;
}

// In the child, right after unshare: the loopback up, the hostname set. It holds every
// capability in the namespaces it just made. Returns 0 or an errno.
int SetUpInside(bool network, bool uts, const std::string& hostname) {
  if (network) {
    int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno;
    ifreq loopback{};
    std::memcpy(loopback.ifr_name, "lo", 3);
    if (::ioctl(fd, SIOCGIFFLAGS, &loopback) != 0) return errno;
    loopback.ifr_flags = static_cast<short>(loopback.ifr_flags | IFF_UP);
    if (::ioctl(fd, SIOCSIFFLAGS, &loopback) != 0) return errno;
    ::close(fd);
  }
  if (uts && !hostname.empty() && ::sethostname(hostname.c_str(), hostname.size()) != 0) {
    return errno;
  }
  return 0;
}

}  // namespace

int PinNamespaces(int argc, char** argv) {
  if (argc < 5) {
    std::printf(
        "error usage: kapal-shim --namespaces DIR UID_MAP GID_MAP [net] [ipc] [uts] "
        "[hostname=NAME]\n");
    return 2;
  }
  std::string dir = argv[2];
  std::string uid_map = MapFile(argv[3]);
  std::string gid_map = MapFile(argv[4]);
  bool network = false, uts = false;
  std::string hostname;
  std::vector<Pin> pins = {{"user", CLONE_NEWUSER}};
  for (int i = 5; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "net") {
      network = true;
      pins.push_back({"net", CLONE_NEWNET});
    } else if (arg == "ipc") {
      pins.push_back({"ipc", CLONE_NEWIPC});
    } else if (arg == "uts") {
      uts = true;
      pins.push_back({"uts", CLONE_NEWUTS});
    } else if (arg.rfind("hostname=", 0) == 0) {
      hostname = arg.substr(9);
    } else {
      std::printf("error unknown namespace \"%s\"\n", arg.c_str());
      return 2;
    }
  }
  int flags = 0;
  for (const Pin& pin : pins) flags |= pin.flag;

  // The child makes the namespaces (CLONE_NEWUSER first: the kernel creates the user namespace
  // before the others in one unshare, so it owns them) and waits; this process, still the
  // host's root, writes its id maps (only a process outside may map more than its own id) and
  // pins the namespaces.
  int ready[2], release[2];
  if (::pipe2(ready, O_CLOEXEC) != 0 || ::pipe2(release, O_CLOEXEC) != 0) return Fail("pipe");
  pid_t child = ::fork();
  if (child < 0) return Fail("fork");
  if (child == 0) {
    ::close(ready[0]);
    ::close(release[1]);
    int error = ::unshare(flags) == 0 ? SetUpInside(network, uts, hostname) : errno;
    (void)::write(ready[1], &error, sizeof error);
    char byte;
    while (::read(release[0], &byte, 1) < 0 && errno == EINTR) {
    }
    _exit(0);
  }
  ::close(ready[1]);
  ::close(release[0]);
  int error = 0;
  ssize_t n;
  while ((n = ::read(ready[0], &error, sizeof error)) < 0 && errno == EINTR) {
  }
  auto finish = [&]() {
    ::close(release[1]);  // the child's read ends: it exits
    ::waitpid(child, nullptr, 0);
  };
  if (n != sizeof error || error != 0) {
    errno = n == sizeof error ? error : EIO;
    finish();
    return Fail("make the namespaces");
  }
  std::string proc = "/proc/" + std::to_string(child);
  if (!WriteFile(proc + "/uid_map", uid_map)) {
    int saved = errno;
    finish();
    errno = saved;
    return Fail("write uid_map \"" + std::string(argv[3]) + "\"");
  }
  if (!WriteFile(proc + "/gid_map", gid_map)) {
    int saved = errno;
    finish();
    errno = saved;
    return Fail("write gid_map \"" + std::string(argv[4]) + "\"");
  }
  std::vector<std::string> pinned;
  for (const Pin& pin : pins) {
    std::string target = dir + "/" + pin.kind;
    std::string source = proc + "/ns/" + pin.kind;
    int fd = ::open(target.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0400);
    bool ok = fd >= 0 && ::mount(source.c_str(), target.c_str(), nullptr, MS_BIND, nullptr) == 0;
    int saved = errno;
    if (fd >= 0) ::close(fd);
    if (!ok) {
      for (const std::string& done : pinned) {
        ::umount2(done.c_str(), MNT_DETACH);
        ::unlink(done.c_str());
      }
      ::unlink(target.c_str());
      finish();
      errno = saved;
      return Fail("pin " + source + " at " + target);
    }
    pinned.push_back(target);
  }
  finish();
  std::printf("ok\n");
  return 0;
}

}  // namespace kapal::shim
