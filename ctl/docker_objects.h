#pragma once

#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ctl/commands.h"
#include "ctl/output.h"

// kapalctl's volume and network verbs. Volumes and networks are objects of kapald's Docker API,
// so these speak that API on its unix socket (whose address kapald reports in Status verbose),
// with a small HTTP/1.1 client of their own (cpp-httplib 0.11 has no unix sockets).
namespace kapal::ctl {

struct DockerObjectCommand {
  std::string kind;    // "volume" or "network"
  std::string action;  // create, ls, inspect, rm
  std::vector<std::string> names;
  std::vector<std::string> labels;  // KEY=VALUE (create)
  std::string subnet;               // network create
  bool quiet = false;
  OutputFormat format = OutputFormat::kTable;
};

absl::Status RunDockerObject(CriClient& client, const DockerObjectCommand& command,
                             std::ostream& out);

// The response to one request on the unix socket SOCKET: status code and body (chunks joined).
struct HttpAnswer {
  int status = 0;
  std::string body;
};
absl::StatusOr<HttpAnswer> UnixHttpRequest(const std::string& socket, const std::string& method,
                                           const std::string& path, const std::string& body);

}  // namespace kapal::ctl
