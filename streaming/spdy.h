#pragma once

#include <zlib.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

// The server side of a SPDY/3.1 connection, as Kubernetes' remotecommand and port-forward
// clients (crictl, kubelet, kubectl before v5) speak it after the HTTP upgrade: the client opens
// streams (SYN_STREAM with headers such as "streamtype"), both sides send DATA frames, FIN ends a
// direction. Header blocks are zlib-compressed with the SPDY/3 dictionary, one compression
// context per direction for the whole connection. Flow control windows are not used by these
// clients (spdystream ignores WINDOW_UPDATE), so none are sent.
namespace kapal::streaming {

// The dictionary header-block compression starts from (SPDY/3 section 2.6.10.1).
const std::string& SpdyHeaderDictionary();

struct SpdyEvent {
  enum class Kind { kStreamOpened, kData, kStreamReset, kGoAway };
  Kind kind;
  uint32_t stream = 0;
  // kStreamOpened: its headers (names lower case).
  std::map<std::string, std::string> headers;
  std::string data;
  bool fin = false;  // the client sends no more on this stream
};

class SpdyConnection {
 public:
  explicit SpdyConnection(int fd);
  SpdyConnection(const SpdyConnection&) = delete;
  SpdyConnection& operator=(const SpdyConnection&) = delete;
  ~SpdyConnection();

  int fd() const { return fd_; }
  // Parses BYTES (read from the socket) into EVENTS; answers PINGs itself. UNAVAILABLE when the
  // client sent something that is not SPDY/3.
  absl::Status Consume(absl::string_view bytes, std::vector<SpdyEvent>& events);
  // Reads once from the socket (after poll said it is readable) and consumes it. UNAVAILABLE at
  // end of connection.
  absl::Status ReadEvents(std::vector<SpdyEvent>& events);

  // Answers the client's SYN_STREAM (the clients wait for this before they use a stream).
  bool Reply(uint32_t stream);
  bool SendData(uint32_t stream, absl::string_view data, bool fin = false);
  bool Reset(uint32_t stream, uint32_t status);
  bool GoAway();

  // Encoders exposed for tests: a SYN_STREAM as a client would send it.
  std::string EncodeSynStream(uint32_t stream, const std::map<std::string, std::string>& headers);

 private:
  absl::Status HandleControl(uint16_t type, uint8_t flags, absl::string_view body,
                             std::vector<SpdyEvent>& events);
  absl::StatusOr<std::map<std::string, std::string>> DecodeHeaders(absl::string_view compressed);
  std::string EncodeHeaders(const std::map<std::string, std::string>& headers);
  bool WriteControl(uint16_t type, uint8_t flags, const std::string& body);

  int fd_;
  std::string in_;
  z_stream inflater_{};
  z_stream deflater_{};
};

}  // namespace kapal::streaming
