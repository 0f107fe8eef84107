#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/logger.h"
#include "builder/builder.h"
#include "runtime/runtime.h"

// The Docker front door: the Docker Engine API 1.41 (what the Docker 20.10 CLI speaks) on a unix
// socket of its own, over the runtime core, so `docker run`, `ps`, `logs`, `exec`, `images`,
// `pull`, `volume`, `network` work against the same pods and containers kubelet and crictl see.
// Each Docker container is a pod with one container (translate.h). Whoever can reach the socket
// can run anything as root on the node: it is root's (and one group's) only.
namespace kapal::docker {

struct ApiOptions {
  std::string socket_path = "/run/kapal/docker.sock";
  gid_t group = 0;
  // Named volumes live under ROOT_DIR/volumes/NAME/_data.
  std::string root_dir = "/var/lib/kapal";
  std::string storage_driver = "overlay";
  // Docker networks are the CNI configs here (`network create` adds its own).
  std::string cni_conf_dir = "/etc/cni/net.d";
  std::string default_runtime = "runc";
  // Where uploaded build contexts wait while they are built.
  std::string scratch_dir = "/var/lib/kapal/tmp";
  // The API on TCP too (HOST:PORT; port 0 picks one): with the three TLS files, clients must
  // present a certificate TLS_CA signed; without them only when ALLOW_PLAIN_TCP on loopback.
  std::string tcp_address;
  std::string tls_cert, tls_key, tls_ca;
  bool allow_plain_tcp = false;
};

class Api {
 public:
  // Serves the API; containers of an earlier run that asked for --rm and have exited are
  // removed, running ones watched.
  static absl::StatusOr<std::unique_ptr<Api>> Start(const ApiOptions& options,
                                                    runtime::Runtime& runtime,
                                                    builder::Builder& builder,
                                                    base::Logger& logger);
  ~Api();  // closes the socket and every connection; waits for their handlers
  // The TCP port served, 0 without TCP.
  int TcpPort() const;

  struct Impl;

 private:
  explicit Api(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kapal::docker
