#pragma once

#include <chrono>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "streaming/spdy.h"
#include "streaming/websocket.h"

// The channels of a remotecommand session (exec, attach) over either wire: SPDY streams named
// by their "streamtype" header, or WebSocket messages whose first byte is the channel. The
// session code sees only channels.
namespace kapal::streaming {

enum class Channel : uint8_t { kStdin = 0, kStdout = 1, kStderr = 2, kError = 3, kResize = 4 };

struct ChannelEvent {
  Channel channel;
  std::string data;
  bool end = false;  // the client sends no more on it
};

class CommandTransport {
 public:
  virtual ~CommandTransport() = default;
  virtual int fd() const = 0;
  // After poll said the socket is readable: what the client sent. UNAVAILABLE when it is gone.
  virtual absl::Status Read(std::vector<ChannelEvent>& events) = 0;
  virtual bool Send(Channel channel, absl::string_view data) = 0;
  // This side sends no more on CHANNEL.
  virtual bool End(Channel channel) = 0;
  // The error channel carries a Kubernetes Status object (v4 and later), not plain text.
  virtual bool StatusOnErrorChannel() const = 0;
};

// After the 101 answer of a SPDY upgrade: waits (until TIMEOUT) for the client to open the
// streams EXPECTED, answering each. EARLY holds bytes that came with the request head.
absl::StatusOr<std::unique_ptr<CommandTransport>> OpenSpdyCommandTransport(
    int fd, const std::string& early, std::string protocol, const std::set<Channel>& expected,
    std::chrono::milliseconds timeout);

// After the 101 answer of a WebSocket upgrade with PROTOCOL (v5.channel.k8s.io,
// v4.channel.k8s.io, base64 variants, channel.k8s.io).
std::unique_ptr<CommandTransport> OpenWebSocketCommandTransport(int fd, const std::string& early,
                                                                std::string protocol);

// The remotecommand protocols this server speaks, best first.
const std::vector<std::string>& SpdyCommandProtocols();
const std::vector<std::string>& WebSocketCommandProtocols();

}  // namespace kapal::streaming
