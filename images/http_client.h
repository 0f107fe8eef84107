#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace kapal::images {

struct HttpOptions {
  std::chrono::seconds connect_timeout{10};
  std::chrono::seconds read_timeout{60};  // a transfer that moves nothing this long ends
  bool verify_tls = true;
  std::string ca_file;  // "" = the system's certificate authorities
};

// What a POST or PUT sends: BYTES, or the SIZE bytes of the file at PATH, read as they go.
struct HttpUpload {
  std::string content_type;  // "" = no Content-Type
  std::string bytes;
  std::string path;
  int64_t size = 0;
  std::function<void(int64_t sent)> progress;  // for a file, after each piece
};

// Called once with the final response's status and header fields (names as the server sent
// them), before any of its body.
using HttpHeadCallback = std::function<void(int status, std::multimap<std::string, std::string>)>;
// Called with each piece of the response body as it arrives; false ends the transfer.
using HttpBodyCallback = std::function<bool(const char* data, size_t size)>;

// One request (GET, HEAD, POST or PUT) to URL (http or https) with HEADERS ("Name: value"),
// through libcurl, which reads the socket in pieces of up to 512 KiB (a blob costs a few
// hundred system calls instead of two per 4 KiB). UPLOAD (may be null) is POST's or PUT's
// body. Redirects are not followed (the caller decides where credentials go) and no proxy from
// the environment is used. Any status is a success here; UNAVAILABLE for network faults and
// timeouts before the response began, DEADLINE_EXCEEDED when a response stalled for the
// read timeout, NOT_FOUND for an upload file that cannot be read, ABORTED when BODY stopped the
// transfer.
absl::Status HttpRequest(const std::string& method, const std::string& url,
                         const std::vector<std::string>& headers, const HttpUpload* upload,
                         const HttpOptions& options, const HttpHeadCallback& head,
                         const HttpBodyCallback& body);

}  // namespace kapal::images
