#pragma once

#include <sys/types.h>

#include <string>

#include "absl/status/statusor.h"
#include "base/unique_fd.h"

namespace kapal::base {

// Makes PATH free for a new listening socket: a socket left by a daemon that crashed is
// removed; one that still answers belongs to a live process and is FAILED_PRECONDITION, as is a
// path that is not a socket. SETTING names the configuration key in messages.
absl::Status ClaimSocketPath(const std::string& path, const std::string& setting);

// A listening unix stream socket at PATH (claimed first), owned by root and GROUP with MODE
// from its first moment (it is bound under a umask that allows no more).
absl::StatusOr<UniqueFd> ListenUnixSocket(const std::string& path, mode_t mode, gid_t group,
                                          const std::string& setting);

// A listening TCP socket on HOST (an IPv4 or IPv6 address, no name) and PORT (0: one the
// kernel picks), and the port it got. PURPOSE names the server in messages.
struct TcpListener {
  UniqueFd fd;
  int port = 0;
};
absl::StatusOr<TcpListener> ListenTcp(const std::string& host, int port,
                                      const std::string& purpose);

}  // namespace kapal::base
