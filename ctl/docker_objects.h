#pragma once

#include <functional>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "ctl/commands.h"
#include "ctl/output.h"

// kapalctl's volume and network verbs, and the Docker verbs below. Volumes and networks are node
// objects of kapald's core (runtime::Volumes, runtime::Networks); kapalctl reaches them through the
// Docker API's unix socket (whose address kapald reports in Status verbose; kapal.v1 has no service
// for them yet), with a small HTTP/1.1 client of its own (cpp-httplib 0.11 has no unix sockets).
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

// `kapalctl events`: the node's events (containers, images, volumes, networks) from kapald's
// journal, as `docker events` shows them; follows until --until or Ctrl-C.
struct EventsCommand {
  std::string since;  // Unix seconds or a duration ago ("10m")
  std::string until;
  std::vector<std::string> filters;  // KEY=VALUE
  OutputFormat format = OutputFormat::kTable;
};
absl::Status RunEvents(CriClient& client, const EventsCommand& command, std::ostream& out);

// Docker's node-wide verbs through the same socket: `rename CONTAINER NAME`, `prune
// containers|images|volumes|networks|system [--all]` (system: stopped containers, unused
// networks, dangling images, or unused ones with ALL) and `system df`.
absl::Status RunRename(CriClient& client, const std::string& container, const std::string& new_name,
                       std::ostream& out);
absl::Status RunPrune(CriClient& client, const std::string& what, bool all, std::ostream& out);
absl::Status RunSystemDf(CriClient& client, OutputFormat format, std::ostream& out);

// The response to one request on the unix socket SOCKET: status code and body (chunks joined).
struct HttpAnswer {
  int status = 0;
  std::string body;
};
// ON_BODY, when given, gets each chunk of a 200 answer as it arrives (the answer's body is then
// not kept) and may end the transfer by returning false; there is no answer timeout then.
absl::StatusOr<HttpAnswer> UnixHttpRequest(
    const std::string& socket, const std::string& method, const std::string& path,
    const std::string& body, const std::function<bool(absl::string_view)>& on_body = nullptr);

}  // namespace kapal::ctl
