#pragma once

#include <cstdint>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "base/unique_fd.h"
#include "ctl/commands.h"
#include "streaming/tls.h"

// kapalctl's side of the streaming server: a WebSocket client for the URLs that Exec, Attach and
// PortForward return (v5.channel.k8s.io for exec and attach, portforward.k8s.io for ports), the
// interactive session on the local terminal, and the local listener of port-forward.
namespace kapal::ctl {

class StreamConnection {
 public:
  // Connects to URL (http:// or https://HOST:PORT/PATH; the server's certificate is not
  // verified, as crictl does), adds QUERY, and upgrades with the first of PROTOCOLS the server
  // takes.
  static absl::StatusOr<StreamConnection> Open(const std::string& url,
                                               const std::vector<std::string>& protocols,
                                               const std::string& query = "");
  int fd() const { return tls_ ? tls_->Plain() : socket_.Get(); }
  const std::string& protocol() const { return protocol_; }
  bool Send(uint8_t channel, absl::string_view data);
  // Reads once (after poll) and returns whole messages: channel and bytes. UNAVAILABLE when the
  // server has closed the connection.
  absl::Status Receive(std::vector<std::pair<uint8_t, std::string>>& messages);

 private:
  StreamConnection() = default;
  base::UniqueFd socket_;                    // the TCP connection
  std::unique_ptr<streaming::TlsPump> tls_;  // for https:// URLs; destroyed before the socket
  std::string protocol_;
  std::string buffer_;
};

struct InteractiveOptions {
  bool stdin = false;  // send our stdin
  bool tty = false;    // the remote has a terminal: ours goes raw and its size is followed
};

// Runs an exec or attach session until the server ends it; the exit code it reports (0 for an
// attach that ended). Ctrl-C reaches the remote terminal as a key when TTY is set.
absl::StatusOr<int> RunInteractive(const std::string& url, const InteractiveOptions& options);

// `port-forward POD [LOCAL:]REMOTE...`: listens on 127.0.0.1:LOCAL and forwards each connection
// through its own PortForward session until interrupted (or, for tests, until MAX_CONNECTIONS
// connections have ended; 0 = no limit).
absl::Status RunPortForward(CriClient& client, const std::string& pod_id,
                            const std::vector<std::string>& ports, std::ostream& out,
                            int max_connections = 0);

}  // namespace kapal::ctl
