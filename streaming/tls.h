#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "base/unique_fd.h"

// TLS for streaming connections, kept apart from the sessions: after the handshake a thread
// moves bytes between the TLS connection and one end of a socketpair, and the session (or
// kapalctl's client) uses the other end as the plain socket it polls and reads.
namespace kapal::streaming {

class TlsContext {
 public:
  // A server's context: the certificate and key from files (PEM), or with both empty a
  // self-signed certificate made now for HOST (as containerd does without a key pair). With
  // CLIENT_CA_FILE, a client must present a certificate that CA signed (mutual TLS, as dockerd's
  // --tlsverify): the handshake fails without one.
  static absl::StatusOr<std::unique_ptr<TlsContext>> ForServer(
      const std::string& cert_file, const std::string& key_file, const std::string& host,
      const std::string& client_ca_file = "");
  // A client's context that does not verify the server (as crictl and kubelet's proxy treat the
  // runtime's streaming server: the URL came over the CRI socket, which is trusted).
  static absl::StatusOr<std::unique_ptr<TlsContext>> ForInsecureClient();
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  struct Impl;

 private:
  explicit TlsContext(std::unique_ptr<Impl> impl);
  friend class TlsPump;
  std::unique_ptr<Impl> impl_;
};

// One TLS connection on the connected TCP socket TCP (not taken: the caller closes it after the
// pump has ended). Start does the handshake (as server or client) and starts the thread; Plain()
// is the socket the session uses. The thread ends when either side closes; the destructor
// joins it (shut TCP down first to end it early).
class TlsPump {
 public:
  static absl::StatusOr<std::unique_ptr<TlsPump>> Start(TlsContext& context, int tcp, bool server);
  // A server's side of an accepted connection: the handshake may take at most 10 s (a client
  // that connects and says nothing does not hold a thread), then Start's pump.
  static absl::StatusOr<std::unique_ptr<TlsPump>> Accept(TlsContext& context, int tcp);
  ~TlsPump();
  TlsPump(const TlsPump&) = delete;
  TlsPump& operator=(const TlsPump&) = delete;

  int Plain() const { return plain_.Get(); }
  // Closes the plain end (the session is done): the pump flushes and ends.
  void ClosePlain() { plain_.Reset(); }

  struct Connection;

 private:
  TlsPump() = default;
  std::unique_ptr<Connection> connection_;
  base::UniqueFd plain_;
  std::thread thread_;
};

}  // namespace kapal::streaming
