#include "runtime/shim_client.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/files.h"
#include "base/unique_fd.h"
#include "shim/exit_file.h"

namespace kapal::runtime {

bool ProcessAlive(int pid) { return pid > 0 && (::kill(pid, 0) == 0 || errno == EPERM); }

bool ShimAlive(int pid, const std::string& bundle) {
  if (!ProcessAlive(pid)) return false;
  absl::StatusOr<std::string> cmdline = base::ReadFile(absl::StrCat("/proc/", pid, "/cmdline"));
  return cmdline.ok() && cmdline->find("kapal-shim") != std::string::npos &&
         cmdline->find(bundle) != std::string::npos;
}

absl::StatusOr<base::UniqueFd> ConnectShimSocket(const std::string& bundle, const char* name) {
  // The bundle path may be longer than a socket address allows; reach it through an fd.
  base::UniqueFd dir(::open(bundle.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return base::ErrnoStatus(errno, "open " + bundle);
  std::string path = absl::StrCat("/proc/self/fd/", dir.Get(), "/", name);
  base::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return base::ErrnoStatus(errno, "socket");
  sockaddr_un address{};
  address.sun_family = AF_UNIX;
  std::strncpy(address.sun_path, path.c_str(), sizeof address.sun_path - 1);
  if (::connect(fd.Get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("the container's shim does not answer on ", name, ": ", std::strerror(errno)));
  }
  return fd;
}

absl::StatusOr<std::string> AskShim(const std::string& bundle, const std::string& command) {
  absl::StatusOr<base::UniqueFd> connected = ConnectShimSocket(bundle, shim::kControlSocket);
  if (!connected.ok()) return connected.status();
  base::UniqueFd fd = std::move(*connected);
  timeval timeout{10, 0};
  ::setsockopt(fd.Get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  std::string line = command + "\n";
  if (::write(fd.Get(), line.data(), line.size()) < 0) return base::ErrnoStatus(errno, "write");
  char buffer[512];
  ssize_t n = ::read(fd.Get(), buffer, sizeof buffer);
  if (n <= 0) return absl::UnavailableError("the container's shim gave no answer");
  std::string answer(buffer, static_cast<size_t>(n));
  while (!answer.empty() && answer.back() == '\n') answer.pop_back();
  return answer;
}

}  // namespace kapal::runtime
