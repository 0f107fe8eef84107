#pragma once

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

// The one HTTP/1.1 request a streaming connection starts with, before it is upgraded (SPDY or
// WebSocket); cpp-httplib cannot hand an upgraded connection over, so this small part is ours.
// The Docker API's server (docker/) reads its requests with it too, since attach and exec
// hijack the connection the same way.
namespace kapal::streaming {

struct HttpRequest {
  std::string method;
  std::string path;   // without the query
  std::string query;  // after '?', undecoded
  // Header names in lower case; a header sent twice keeps both values.
  std::multimap<std::string, std::string> headers;

  // The first value of header NAME (lower case), "" when absent.
  std::string Header(const std::string& name) const;
  // Every value of NAME, lists split at commas and trimmed ("a, b" and two headers alike).
  std::vector<std::string> HeaderList(const std::string& name) const;
  // Values of query parameter NAME, percent-decoded.
  std::vector<std::string> QueryValues(const std::string& name) const;
};

// Reads the request head from FD (blocking, until TIMEOUT), starting with the bytes LEFTOVER
// holds already (read past an earlier request). Bytes after the head (a body, or the first
// frames a client sends at once) are returned in LEFTOVER.
absl::StatusOr<HttpRequest> ReadRequest(int fd, std::chrono::milliseconds timeout,
                                        std::string& leftover);

// Writes all of DATA to FD (blocking; the socket's send timeout bounds a client that reads
// nothing). False when the client is gone or too slow.
bool WriteAll(int fd, absl::string_view data);

// Reads what FD has now into OUT (empty when nothing yet: EAGAIN); false at end of file or on an
// error (EIO: a terminal whose other side closed).
bool ReadAvailable(int fd, std::string& out);

// A complete response with a plain-text body, for refusals ("404 Not Found", TEXT).
void WriteError(int fd, int code, const std::string& reason, const std::string& text);

}  // namespace kapal::streaming
