#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

// The server side of a WebSocket connection (RFC 6455) after the HTTP upgrade: whole messages
// in, messages out. Pings are answered here; a close from the client is an event.
namespace kapal::streaming {

// Sec-WebSocket-Accept for the client's Sec-WebSocket-Key.
std::string WebSocketAccept(const std::string& key);

enum class WebSocketOpcode : uint8_t { kText = 1, kBinary = 2, kClose = 8, kPing = 9, kPong = 10 };

struct WebSocketMessage {
  WebSocketOpcode opcode;
  std::string payload;
};

class WebSocketConnection {
 public:
  explicit WebSocketConnection(int fd) : fd_(fd) {}
  int fd() const { return fd_; }
  // Parses BYTES read from the client into MESSAGES (text, binary and close). UNAVAILABLE for
  // what is not a client's WebSocket frame (servers require masked frames).
  absl::Status Consume(absl::string_view bytes, std::vector<WebSocketMessage>& messages);
  // Reads once from the socket and consumes it; UNAVAILABLE at end of connection.
  absl::Status ReadMessages(std::vector<WebSocketMessage>& messages);
  bool Send(WebSocketOpcode opcode, absl::string_view payload);
  // Kubernetes' channel framing: a binary message whose first byte is the channel, or with
  // BASE64 (the *.base64.channel.k8s.io protocols) a text message of the channel's digit and
  // the data in base64.
  bool SendOnChannel(uint8_t channel, absl::string_view data, bool base64);
  // The channel and data of such a message; false for one that is not (empty, bad base64).
  static bool ChannelMessage(const WebSocketMessage& message, bool base64, uint8_t& channel,
                             std::string& data);
  // A close frame with STATUS (1000 normal).
  bool Close(uint16_t status = 1000);

  // A frame as a client sends it (masked), for tests and kapalctl.
  static std::string EncodeClientFrame(WebSocketOpcode opcode, absl::string_view payload);
  // A frame as a server sends it (unmasked).
  static std::string EncodeServerFrame(WebSocketOpcode opcode, absl::string_view payload);
  // Splits what a server sent into messages; ok with a partial frame left in BUFFER.
  static absl::Status DecodeServerFrames(std::string& buffer,
                                         std::vector<WebSocketMessage>& messages);

 private:
  int fd_;
  std::string in_;
  std::string fragments_;
  uint8_t fragment_opcode_ = 0;
};

}  // namespace kapal::streaming
