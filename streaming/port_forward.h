#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/unique_fd.h"

// Port forwarding sessions: each forwarded connection is a pair of channels (data, error) from
// the client, bridged to a TCP connection made inside the pod's network namespace.
namespace kapal::streaming {

// Connects to PORT in the pod (Runtime::DialPod bound to one pod).
using DialFunction = std::function<absl::StatusOr<base::UniqueFd>(uint16_t port)>;

// SPDY ("portforward.k8s.io"): the client opens an error and a data stream per connection,
// with headers "port" and "requestid"; many at once. Runs until the client goes away.
void RunSpdyPortForward(int fd, const std::string& early, const DialFunction& dial);

// WebSocket ("v4.channel.k8s.io", "portforward.k8s.io"): PORTS from the URL, channel 2i is the
// data and 2i+1 the error channel of PORTS[i]; each channel's first message from the server is
// the port (2 bytes, little endian). One connection per port; runs until the client goes away.
void RunWebSocketPortForward(int fd, const std::string& early, bool base64,
                             const std::vector<uint16_t>& ports, const DialFunction& dial);

}  // namespace kapal::streaming
