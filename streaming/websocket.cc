#include "streaming/websocket.h"

#include <openssl/sha.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "absl/strings/escaping.h"
#include "streaming/http.h"

namespace kapal::streaming {

namespace {

constexpr uint64_t kMaxMessage = 16 * 1024 * 1024;

std::string EncodeFrame(WebSocketOpcode opcode, absl::string_view payload, bool masked) {
  std::string frame;
  frame += static_cast<char>(0x80 | static_cast<uint8_t>(opcode));
  uint8_t mask_bit = masked ? 0x80 : 0;
  if (payload.size() < 126) {
    frame += static_cast<char>(mask_bit | payload.size());
  } else if (payload.size() <= 0xffff) {
    frame += static_cast<char>(mask_bit | 126);
    frame += static_cast<char>(payload.size() >> 8);
    frame += static_cast<char>(payload.size() & 0xff);
  } else {
    frame += static_cast<char>(mask_bit | 127);
    for (int shift = 56; shift >= 0; shift -= 8) {
      frame += static_cast<char>((static_cast<uint64_t>(payload.size()) >> shift) & 0xff);
    }
  }
  if (!masked) return frame.append(payload.data(), payload.size());
  std::random_device random;
  uint32_t key_value = random();
  char key[4];
  std::memcpy(key, &key_value, 4);
  frame.append(key, 4);
  size_t start = frame.size();
  frame.append(payload.data(), payload.size());
  for (size_t i = 0; i < payload.size(); ++i) frame[start + i] ^= key[i % 4];
  return frame;
}

// One frame from the front of BUFFER; nullopt-like false when incomplete.
struct Frame {
  bool fin;
  uint8_t opcode;
  std::string payload;
};

absl::StatusOr<bool> TakeFrame(std::string& buffer, bool expect_mask, Frame& frame) {
  if (buffer.size() < 2) return false;
  const auto* bytes = reinterpret_cast<const uint8_t*>(buffer.data());
  frame.fin = (bytes[0] & 0x80) != 0;
  frame.opcode = bytes[0] & 0x0f;
  bool masked = (bytes[1] & 0x80) != 0;
  if (masked != expect_mask) {
    return absl::UnavailableError(expect_mask ? "unmasked WebSocket frame from a client"
                                              : "masked WebSocket frame from a server");
  }
  uint64_t length = bytes[1] & 0x7f;
  size_t at = 2;
  if (length == 126) {
    if (buffer.size() < 4) return false;
    length = (static_cast<uint64_t>(bytes[2]) << 8) | bytes[3];
    at = 4;
  } else if (length == 127) {
    if (buffer.size() < 10) return false;
    length = 0;
    for (int i = 0; i < 8; ++i) length = (length << 8) | bytes[2 + i];
    at = 10;
  }
  if (length > kMaxMessage) return absl::UnavailableError("WebSocket frame too large");
  size_t key_at = at;
  if (masked) at += 4;
  if (buffer.size() < at + length) return false;
  frame.payload = buffer.substr(at, length);
  if (masked) {
    for (size_t i = 0; i < frame.payload.size(); ++i) frame.payload[i] ^= buffer[key_at + i % 4];
  }
  buffer.erase(0, at + length);
  return true;
}

}  // namespace

std::string WebSocketAccept(const std::string& key) {
  std::string text = key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return absl::Base64Escape(
      absl::string_view(reinterpret_cast<const char*>(digest), SHA_DIGEST_LENGTH));
}

absl::Status WebSocketConnection::ReadMessages(std::vector<WebSocketMessage>& messages) {
  char buffer[64 * 1024];
  ssize_t n = ::read(fd_, buffer, sizeof buffer);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return absl::OkStatus();
  if (n <= 0) return absl::UnavailableError("the client closed the connection");
  return Consume(absl::string_view(buffer, static_cast<size_t>(n)), messages);
}

absl::Status WebSocketConnection::Consume(absl::string_view bytes,
                                          std::vector<WebSocketMessage>& messages) {
  in_.append(bytes.data(), bytes.size());
  for (;;) {
    Frame frame;
    absl::StatusOr<bool> taken = TakeFrame(in_, /*expect_mask=*/true, frame);
    if (!taken.ok()) return taken.status();
    if (!*taken) return absl::OkStatus();
    switch (frame.opcode) {
      case 0x9:  // ping
        Send(WebSocketOpcode::kPong, frame.payload);
        continue;
      case 0xA:  // pong
        continue;
      case 0x8:
        messages.push_back({WebSocketOpcode::kClose, frame.payload});
        continue;
      case 0x0:  // continuation
        if (fragment_opcode_ == 0) return absl::UnavailableError("stray WebSocket continuation");
        fragments_ += frame.payload;
        break;
      case 0x1:
      case 0x2:
        fragment_opcode_ = frame.opcode;
        fragments_ = std::move(frame.payload);
        break;
      default:
        return absl::UnavailableError("unknown WebSocket opcode");
    }
    if (fragments_.size() > kMaxMessage)
      return absl::UnavailableError("WebSocket message too large");
    if (frame.fin) {
      messages.push_back({static_cast<WebSocketOpcode>(fragment_opcode_), std::move(fragments_)});
      fragments_.clear();
      fragment_opcode_ = 0;
    }
  }
}

bool WebSocketConnection::Send(WebSocketOpcode opcode, absl::string_view payload) {
  return WriteAll(fd_, EncodeFrame(opcode, payload, /*masked=*/false));
}

bool WebSocketConnection::SendOnChannel(uint8_t channel, absl::string_view data, bool base64) {
  if (base64) {
    std::string text(1, static_cast<char>('0' + channel));
    text += absl::Base64Escape(data);
    return Send(WebSocketOpcode::kText, text);
  }
  std::string message(1, static_cast<char>(channel));
  message.append(data.data(), data.size());
  return Send(WebSocketOpcode::kBinary, message);
}

bool WebSocketConnection::ChannelMessage(const WebSocketMessage& message, bool base64,
                                         uint8_t& channel, std::string& data) {
  if (message.payload.empty()) return false;
  if (!base64) {
    channel = static_cast<uint8_t>(message.payload[0]);
    data = message.payload.substr(1);
    return true;
  }
  channel = static_cast<uint8_t>(message.payload[0] - '0');
  return absl::Base64Unescape(absl::string_view(message.payload).substr(1), &data);
}

bool WebSocketConnection::Close(uint16_t status) {
  std::string payload;
  payload += static_cast<char>(status >> 8);
  payload += static_cast<char>(status & 0xff);
  return Send(WebSocketOpcode::kClose, payload);
}

std::string WebSocketConnection::EncodeClientFrame(WebSocketOpcode opcode,
                                                   absl::string_view payload) {
  return EncodeFrame(opcode, payload, /*masked=*/true);
}

std::string WebSocketConnection::EncodeServerFrame(WebSocketOpcode opcode,
                                                   absl::string_view payload) {
  return EncodeFrame(opcode, payload, /*masked=*/false);
}

absl::Status WebSocketConnection::DecodeServerFrames(std::string& buffer,
                                                     std::vector<WebSocketMessage>& messages) {
  for (;;) {
    Frame frame;
    absl::StatusOr<bool> taken = TakeFrame(buffer, /*expect_mask=*/false, frame);
    if (!taken.ok()) return taken.status();
    if (!*taken) return absl::OkStatus();
    // Servers of ours never fragment; a continuation is appended to the last message.
    if (frame.opcode == 0 && !messages.empty()) {
      messages.back().payload += frame.payload;
    } else {
      messages.push_back({static_cast<WebSocketOpcode>(frame.opcode), std::move(frame.payload)});
    }
  }
}

}  // namespace kapal::streaming
