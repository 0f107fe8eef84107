#include "base/unix_socket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/files.h"

namespace kapal::base {

namespace {

absl::StatusOr<sockaddr_un> AddressOf(const std::string& path) {
  sockaddr_un address{};
  if (path.size() >= sizeof(address.sun_path)) {
    return absl::InvalidArgumentError(absl::StrCat("socket path ", path, " is longer than ",
                                                   sizeof(address.sun_path) - 1,
                                                   " bytes, the most a unix socket can have"));
  }
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
  return address;
}

}  // namespace

absl::Status ClaimSocketPath(const std::string& path, const std::string& setting) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return ErrnoStatus(errno, "stat " + path);
  }
  if (!S_ISSOCK(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " exists and is not a socket; remove it or choose another ", setting));
  }
  absl::StatusOr<sockaddr_un> address = AddressOf(path);
  if (!address.ok()) return address.status();
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoStatus(errno, "socket");
  if (::connect(fd.Get(), reinterpret_cast<const sockaddr*>(&*address), sizeof *address) == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "socket ", path, " is served by a running process (another kapald?); stop it first"));
  }
  if (errno != ECONNREFUSED) return ErrnoStatus(errno, "probe socket " + path);
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, "remove stale socket " + path);
  }
  return absl::OkStatus();
}

absl::StatusOr<UniqueFd> ListenUnixSocket(const std::string& path, mode_t mode, gid_t group,
                                          const std::string& setting) {
  if (absl::Status claimed = ClaimSocketPath(path, setting); !claimed.ok()) return claimed;
  absl::StatusOr<sockaddr_un> address = AddressOf(path);
  if (!address.ok()) return address.status();
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return ErrnoStatus(errno, "socket");
  // fchmod does not apply to a socket's path, and a chmod after bind leaves a moment with the
  // umask's mode; binding with a umask that takes everything away closes that moment.
  mode_t saved_umask = ::umask(0177);
  int bound = ::bind(fd.Get(), reinterpret_cast<const sockaddr*>(&*address), sizeof *address);
  int bind_errno = errno;
  ::umask(saved_umask);
  if (bound != 0) return ErrnoStatus(bind_errno, "bind " + path);
  if (::chown(path.c_str(), 0, group) != 0 || ::chmod(path.c_str(), mode) != 0) {
    absl::Status status = ErrnoStatus(errno, "set owner and mode of " + path);
    ::unlink(path.c_str());
    return status;
  }
  if (::listen(fd.Get(), 128) != 0) {
    absl::Status status = ErrnoStatus(errno, "listen on " + path);
    ::unlink(path.c_str());
    return status;
  }
  return fd;
}

absl::StatusOr<TcpListener> ListenTcp(const std::string& host, int port,
                                      const std::string& purpose) {
  bool v6 = host.find(':') != std::string::npos;
  TcpListener listener;
  listener.fd.Reset(::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!listener.fd) return ErrnoStatus(errno, "socket");
  int yes = 1;
  ::setsockopt(listener.fd.Get(), SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  sockaddr_storage storage{};
  socklen_t length = 0;
  if (v6) {
    auto* address = reinterpret_cast<sockaddr_in6*>(&storage);
    address->sin6_family = AF_INET6;
    address->sin6_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET6, host.c_str(), &address->sin6_addr) != 1) {
      return absl::InvalidArgumentError(absl::StrCat(purpose, ": bad IPv6 host ", host));
    }
    length = sizeof *address;
  } else {
    auto* address = reinterpret_cast<sockaddr_in*>(&storage);
    address->sin_family = AF_INET;
    address->sin_port = htons(static_cast<uint16_t>(port));
    if (::inet_pton(AF_INET, host.c_str(), &address->sin_addr) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(purpose, ": \"", host, "\" is not an IP address"));
    }
    length = sizeof *address;
  }
  if (::bind(listener.fd.Get(), reinterpret_cast<sockaddr*>(&storage), length) != 0) {
    return ErrnoStatus(errno, absl::StrCat("bind ", purpose, " to ", host, ":", port));
  }
  if (::listen(listener.fd.Get(), 128) != 0) return ErrnoStatus(errno, "listen");
  length = sizeof storage;
  ::getsockname(listener.fd.Get(), reinterpret_cast<sockaddr*>(&storage), &length);
  listener.port = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&storage)->sin6_port
                           : reinterpret_cast<sockaddr_in*>(&storage)->sin_port);
  return listener;
}

}  // namespace kapal::base
