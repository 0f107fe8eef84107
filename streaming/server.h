#pragma once

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "base/logger.h"
#include "metrics/metrics.h"
#include "runtime/runtime.h"

// The streaming server (a front door of its own): CRI's Exec, Attach and PortForward answer
// with a URL here, and the client (crictl, kubelet for kubectl, kapalctl) upgrades a connection
// to it: SPDY/3.1 with the remotecommand (v1-v4) and portforward.k8s.io protocols, or WebSocket
// (v5.channel.k8s.io, v4, base64 variants, port forwarding), over HTTP or HTTPS (tls.h). Each
// URL holds a single-use token that expires after a minute. Sessions run on threads of their own,
// so a slow or vanished client holds nothing but its session.
namespace kapal::streaming {

struct ServerOptions {
  // "HOST:PORT"; port 0 picks a free one. containerd's default is loopback only.
  std::string address = "127.0.0.1:0";
  // The host to put in URLs when ADDRESS is a wildcard ("" = the address's host).
  std::string advertised_host;
  // HTTPS: the key pair from these PEM files, or a self-signed certificate when both are empty.
  bool tls = false;
  std::string tls_cert_file;
  std::string tls_key_file;
};

struct ExecSession {
  std::string container_id;
  runtime::ExecOptions options;
};

struct AttachSession {
  std::string container_id;
  bool stdin = false;
  bool stdout = true;
  bool stderr = true;
  bool tty = false;
};

struct PortForwardSession {
  std::string pod_id;
  std::vector<uint16_t> ports;  // from the request; a client may name others in its streams
};

class Server {
 public:
  static absl::StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options,
                                                       runtime::Runtime& runtime,
                                                       metrics::Registry& metrics,
                                                       base::Logger& logger);
  ~Server();  // closes the listener and every session, waits for their threads

  // Where it listens ("127.0.0.1:PORT").
  const std::string& Address() const;
  // A URL with a fresh token for one session.
  std::string ExecUrl(ExecSession session);
  std::string AttachUrl(AttachSession session);
  std::string PortForwardUrl(PortForwardSession session);

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kapal::streaming
