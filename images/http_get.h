#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace kapal::images {

struct HttpGetOptions {
  std::chrono::seconds connect_timeout{10};
  std::chrono::seconds read_timeout{60};  // a transfer that receives nothing this long ends
  bool verify_tls = true;
  std::string ca_file;  // "" = the system's certificate authorities
};

// Called once with the final response's status and header fields (names as the server sent
// them), before any of its body.
using HttpHeadCallback = std::function<void(int status, std::multimap<std::string, std::string>)>;
// Called with each piece of the body as it arrives; false ends the transfer.
using HttpBodyCallback = std::function<bool(const char* data, size_t size)>;

// One GET of URL (http or https) with HEADERS ("Name: value"), through libcurl, which reads
// the socket in pieces of up to 512 KiB (a blob costs a few hundred system calls instead of
// two per 4 KiB). Redirects are not followed (the caller decides where credentials go) and no
// proxy from the environment is used. Any status is a success here; UNAVAILABLE for network
// faults and timeouts, ABORTED when BODY stopped the transfer.
absl::Status HttpGet(const std::string& url, const std::vector<std::string>& headers,
                     const HttpGetOptions& options, const HttpHeadCallback& head,
                     const HttpBodyCallback& body);

}  // namespace kapal::images
