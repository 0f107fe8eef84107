#pragma once

// daemon: kapald itself. Its configuration (kapal.toml), the root lock, the sockets, signals,
// and the wiring of store, images, snapshotter, runtime and the front doors. Nothing else
// depends on it.

#include <chrono>
#include <memory>

#include "absl/status/statusor.h"
#include "base/logger.h"
#include "daemon/config.h"

namespace kapal::daemon {

// kapald as a whole: owns the root lock, the store, the metrics endpoint and the gRPC server on
// the unix socket. Start returns once the socket accepts calls.
class Daemon {
 public:
  static absl::StatusOr<std::unique_ptr<Daemon>> Start(const Config& config, base::Logger& logger);
  ~Daemon();

  // Stops accepting calls, lets calls in flight finish for up to GRACE (then cancels them),
  // closes the store and removes the socket.
  void Shutdown(std::chrono::milliseconds grace);

  // The metrics endpoint actually listened on ("" when metrics are off).
  const std::string& MetricsAddress() const;

 private:
  struct Parts;
  explicit Daemon(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace kapal::daemon
