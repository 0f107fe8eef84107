#include "ctl/docker_objects.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/files.h"
#include "base/unique_fd.h"
#include "nlohmann/json.hpp"

namespace kapal::ctl {

namespace {

constexpr int kAnswerTimeoutMs = 60000;

// Joins the chunks of a chunked body.
absl::StatusOr<std::string> Dechunk(absl::string_view body) {
  std::string out;
  while (true) {
    size_t line_end = body.find("\r\n");
    if (line_end == absl::string_view::npos) return absl::DataLossError("chunked body cut short");
    size_t size = 0;
    if (!absl::SimpleHexAtoi(body.substr(0, line_end), &size)) {
      return absl::DataLossError("malformed chunk size");
    }
    body.remove_prefix(line_end + 2);
    if (size == 0) return out;
    if (body.size() < size + 2) return absl::DataLossError("chunked body cut short");
    out.append(body.data(), size);
    body.remove_prefix(size + 2);
  }
}

// Where kapald's Docker API listens, from its verbose Status (config.docker.address).
absl::StatusOr<std::string> DockerSocketOf(CriClient& client) {
  runtime::v1::StatusRequest request;
  request.set_verbose(true);
  runtime::v1::StatusResponse response;
  grpc::Status status = client.Runtime().Status(client.NewContext().get(), request, &response);
  if (!status.ok()) return RpcError("Status", status);
  auto found = response.info().find("config");
  nlohmann::json config = found == response.info().end()
                              ? nlohmann::json()
                              : nlohmann::json::parse(found->second, nullptr, false);
  std::string address;
  if (config.is_object() && config.contains("docker") && config["docker"].is_object()) {
    address = config["docker"].value("address", "");
  }
  if (address.empty()) {
    return absl::FailedPreconditionError(
        "the runtime serves no Docker API (kapald's [docker] address is empty, or it is not "
        "kapald): volumes and networks live there");
  }
  return address;
}

std::string ErrorMessage(const HttpAnswer& answer) {
  nlohmann::json error = nlohmann::json::parse(answer.body, nullptr, false);
  if (error.is_object() && error.contains("message")) return error.value("message", "");
  return std::string(absl::StripAsciiWhitespace(answer.body));
}

absl::Status AnswerError(const std::string& what, const HttpAnswer& answer) {
  std::string message = absl::StrCat(what, ": ", ErrorMessage(answer));
  switch (answer.status) {
    case 400:
      return absl::InvalidArgumentError(message);
    case 403:
      return absl::PermissionDeniedError(message);
    case 404:
      return absl::NotFoundError(message);
    case 409:
      return absl::FailedPreconditionError(message);
    default:
      return absl::InternalError(message);
  }
}

std::string Subnets(const nlohmann::json& network) {
  std::vector<std::string> subnets;
  nlohmann::json ipam = network.value("IPAM", nlohmann::json::object());
  for (const nlohmann::json& config : ipam.value("Config", nlohmann::json::array())) {
    if (config.is_object()) subnets.push_back(config.value("Subnet", ""));
  }
  return absl::StrJoin(subnets, ",");
}

}  // namespace

absl::StatusOr<HttpAnswer> UnixHttpRequest(const std::string& socket, const std::string& method,
                                           const std::string& path, const std::string& body) {
  sockaddr_un address{};
  if (socket.size() >= sizeof address.sun_path) {
    return absl::InvalidArgumentError("socket path too long: " + socket);
  }
  address.sun_family = AF_UNIX;
  std::memcpy(address.sun_path, socket.c_str(), socket.size() + 1);
  base::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return base::ErrnoStatus(errno, "socket");
  if (::connect(fd.Get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    return base::ErrnoStatus(errno, "connect to the Docker API at " + socket);
  }
  std::string request =
      absl::StrCat(method, " /v1.41", path, " HTTP/1.1\r\nHost: kapald\r\nConnection: close\r\n");
  if (!body.empty()) {
    absl::StrAppend(&request, "Content-Type: application/json\r\nContent-Length: ", body.size(),
                    "\r\n");
  }
  absl::StrAppend(&request, "\r\n", body);
  for (size_t sent = 0; sent < request.size();) {
    ssize_t n = ::send(fd.Get(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return base::ErrnoStatus(errno, "send to " + socket);
    sent += static_cast<size_t>(n);
  }
  std::string raw;
  char buffer[16 * 1024];
  for (;;) {
    pollfd polled{fd.Get(), POLLIN, 0};
    int ready = ::poll(&polled, 1, kAnswerTimeoutMs);
    if (ready == 0) return absl::DeadlineExceededError("no answer from " + socket);
    if (ready < 0 && errno == EINTR) continue;
    ssize_t n = ::read(fd.Get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return base::ErrnoStatus(errno, "read from " + socket);
    if (n == 0) break;
    raw.append(buffer, static_cast<size_t>(n));
  }
  size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos) return absl::DataLossError("no HTTP answer from " + socket);
  std::vector<std::string> lines = absl::StrSplit(raw.substr(0, head_end), "\r\n");
  std::vector<std::string> status_line = absl::StrSplit(lines[0], ' ');
  HttpAnswer answer;
  if (status_line.size() < 2 || !absl::SimpleAtoi(status_line[1], &answer.status)) {
    return absl::DataLossError("malformed HTTP answer: " + lines[0]);
  }
  bool chunked = false;
  for (const std::string& line : lines) {
    std::string lower = absl::AsciiStrToLower(line);
    if (absl::StartsWith(lower, "transfer-encoding:") && absl::StrContains(lower, "chunked")) {
      chunked = true;
    }
  }
  answer.body = raw.substr(head_end + 4);
  if (chunked) {
    absl::StatusOr<std::string> joined = Dechunk(answer.body);
    if (!joined.ok()) return joined.status();
    answer.body = std::move(*joined);
  }
  return answer;
}

absl::Status RunDockerObject(CriClient& client, const DockerObjectCommand& command,
                             std::ostream& out) {
  absl::StatusOr<std::string> socket = DockerSocketOf(client);
  if (!socket.ok()) return socket.status();
  const bool volume = command.kind == "volume";
  const std::string collection = volume ? "/volumes" : "/networks";
  auto call = [&](const std::string& method, const std::string& path,
                  const std::string& body) -> absl::StatusOr<nlohmann::json> {
    absl::StatusOr<HttpAnswer> answer = UnixHttpRequest(*socket, method, path, body);
    if (!answer.ok()) return answer.status();
    if (answer->status >= 300) {
      return AnswerError(absl::StrCat(command.kind, " ", command.action), *answer);
    }
    if (answer->body.empty()) return nlohmann::json();
    return nlohmann::json::parse(answer->body, nullptr, false);
  };

  if (command.action == "create") {
    nlohmann::json labels = nlohmann::json::object();
    for (const std::string& label : command.labels) {
      std::pair<std::string, std::string> kv = absl::StrSplit(label, absl::MaxSplits('=', 1));
      if (kv.first.empty()) return absl::InvalidArgumentError("bad label \"" + label + "\"");
      labels[kv.first] = kv.second;
    }
    nlohmann::json body = {{"Name", command.names.front()}, {"Labels", labels}};
    if (!volume && !command.subnet.empty()) {
      body["IPAM"] = {{"Config", {{{"Subnet", command.subnet}}}}};
    }
    absl::StatusOr<nlohmann::json> made = call("POST", collection + "/create", body.dump());
    if (!made.ok()) return made.status();
    out << (volume ? made->value("Name", "") : made->value("Id", "")) << "\n";
    return absl::OkStatus();
  }
  if (command.action == "ls") {
    absl::StatusOr<nlohmann::json> listed = call("GET", collection, "");
    if (!listed.ok()) return listed.status();
    nlohmann::json items = volume ? listed->value("Volumes", nlohmann::json::array()) : *listed;
    if (!items.is_array()) items = nlohmann::json::array();
    if (command.format != OutputFormat::kTable) {
      PrintDocument(items, command.format, out);
      return absl::OkStatus();
    }
    if (command.quiet) {
      for (const nlohmann::json& item : items) out << item.value("Name", "") << "\n";
      return absl::OkStatus();
    }
    Table table(volume ? std::vector<std::string>{"DRIVER", "VOLUME NAME", "MOUNTPOINT"}
                       : std::vector<std::string>{"NAME", "DRIVER", "SUBNET", "CONTAINERS"});
    for (const nlohmann::json& item : items) {
      if (volume) {
        table.AddRow(
            {item.value("Driver", ""), item.value("Name", ""), item.value("Mountpoint", "")});
      } else {
        table.AddRow({item.value("Name", ""), item.value("Driver", ""), Subnets(item),
                      std::to_string(item.value("Containers", nlohmann::json::object()).size())});
      }
    }
    table.Print(out);
    return absl::OkStatus();
  }
  if (command.action == "inspect") {
    nlohmann::json all = nlohmann::json::array();
    for (const std::string& name : command.names) {
      absl::StatusOr<nlohmann::json> one = call("GET", collection + "/" + name, "");
      if (!one.ok()) return one.status();
      all.push_back(*one);
    }
    PrintDocument(
        all, command.format == OutputFormat::kTable ? OutputFormat::kJson : command.format, out);
    return absl::OkStatus();
  }
  if (command.action == "rm") {
    for (const std::string& name : command.names) {
      absl::StatusOr<nlohmann::json> removed = call("DELETE", collection + "/" + name, "");
      if (!removed.ok()) return removed.status();
      out << name << "\n";
    }
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError("unknown action " + command.action);
}

}  // namespace kapal::ctl
