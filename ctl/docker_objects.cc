#include "ctl/docker_objects.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/files.h"
#include "base/unique_fd.h"
#include "ctl/image_commands.h"
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

std::string UrlEncode(absl::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      absl::StrAppend(&out, "%", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
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

// One request to kapald's Docker API: its JSON answer (null for an empty body), or the error
// the status says, naming WHAT.
absl::StatusOr<nlohmann::json> CallDocker(const std::string& socket, const std::string& what,
                                          const std::string& method, const std::string& path,
                                          const std::string& body = "") {
  absl::StatusOr<HttpAnswer> answer = UnixHttpRequest(socket, method, path, body);
  if (!answer.ok()) return answer.status();
  if (answer->status >= 300) return AnswerError(what, *answer);
  if (answer->body.empty()) return nlohmann::json();
  return nlohmann::json::parse(answer->body, nullptr, false);
}

}  // namespace

absl::StatusOr<HttpAnswer> UnixHttpRequest(const std::string& socket, const std::string& method,
                                           const std::string& path, const std::string& body,
                                           const std::function<bool(absl::string_view)>& on_body) {
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
  size_t handed = 0;  // bytes of the (chunked) body already given to ON_BODY
  for (;;) {
    pollfd polled{fd.Get(), POLLIN, 0};
    // A streamed answer (events) may be quiet for as long as nothing happens.
    int ready = ::poll(&polled, 1, on_body ? -1 : kAnswerTimeoutMs);
    if (ready == 0) return absl::DeadlineExceededError("no answer from " + socket);
    if (ready < 0 && errno == EINTR) continue;
    ssize_t n = ::read(fd.Get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return base::ErrnoStatus(errno, "read from " + socket);
    if (n == 0) break;
    raw.append(buffer, static_cast<size_t>(n));
    if (!on_body) continue;
    // Whole chunks as they arrive (the head must be complete and say 200).
    size_t head = raw.find("\r\n\r\n");
    if (head == std::string::npos || !absl::StartsWith(raw, "HTTP/1.1 200")) continue;
    size_t at = head + 4 + handed;
    for (;;) {
      size_t line_end = raw.find("\r\n", at);
      if (line_end == std::string::npos) break;
      size_t size = 0;
      if (!absl::SimpleHexAtoi(raw.substr(at, line_end - at), &size)) break;
      if (size == 0 || raw.size() < line_end + 2 + size + 2) break;
      if (!on_body(absl::string_view(raw).substr(line_end + 2, size))) return HttpAnswer{200, ""};
      at = line_end + 2 + size + 2;
      handed = at - head - 4;
    }
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
  auto call = [&](const std::string& method, const std::string& path, const std::string& body) {
    return CallDocker(*socket, absl::StrCat(command.kind, " ", command.action), method, path, body);
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

absl::Status RunEvents(CriClient& client, const EventsCommand& command, std::ostream& out) {
  absl::StatusOr<std::string> socket = DockerSocketOf(client);
  if (!socket.ok()) return socket.status();
  std::map<std::string, std::vector<std::string>> filters;
  for (const std::string& filter : command.filters) {
    size_t equals = filter.find('=');
    if (equals == std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bad filter \"", filter, "\": give KEY=VALUE (type, event, container, ...)"));
    }
    filters[filter.substr(0, equals)].push_back(filter.substr(equals + 1));
  }
  auto seconds = [](const std::string& text) -> absl::StatusOr<std::string> {
    if (text.empty()) return text;
    double value = 0;
    if (absl::SimpleAtod(text, &value)) return text;  // Unix seconds
    absl::Duration ago;
    if (absl::ParseDuration(text, &ago)) {
      return absl::StrCat(absl::ToUnixSeconds(absl::Now() - ago));  // "10m": that long ago
    }
    return absl::InvalidArgumentError(
        absl::StrCat("bad time \"", text, "\": give Unix seconds or a duration like 10m"));
  };
  absl::StatusOr<std::string> since = seconds(command.since);
  absl::StatusOr<std::string> until = seconds(command.until);
  if (!since.ok()) return since.status();
  if (!until.ok()) return until.status();
  std::string path = absl::StrCat("/events?filters=", UrlEncode(nlohmann::json(filters).dump()));
  if (!since->empty()) absl::StrAppend(&path, "&since=", *since);
  if (!until->empty()) absl::StrAppend(&path, "&until=", *until);
  absl::StatusOr<HttpAnswer> answer =
      UnixHttpRequest(*socket, "GET", path, "", [&](absl::string_view chunk) {
        for (absl::string_view line : absl::StrSplit(chunk, '\n', absl::SkipEmpty())) {
          nlohmann::json event = nlohmann::json::parse(line, nullptr, false);
          if (!event.is_object()) continue;
          if (command.format == OutputFormat::kJson) {
            out << event.dump() << "\n";
          } else {
            // docker events' own line: TIME TYPE ACTION ID (ATTRIBUTES)
            std::vector<std::string> attributes;
            nlohmann::json actor = event.value("Actor", nlohmann::json::object());
            nlohmann::json attribute_map = actor.value("Attributes", nlohmann::json::object());
            for (const auto& [key, value] : attribute_map.items()) {
              if (value.is_string()) attributes.push_back(key + "=" + value.get<std::string>());
            }
            absl::Time time = absl::FromUnixNanos(event.value("timeNano", int64_t{0}));
            out << absl::FormatTime("%Y-%m-%dT%H:%M:%E9S%Ez", time, absl::LocalTimeZone()) << " "
                << event.value("Type", "") << " " << event.value("Action", "") << " "
                << actor.value("ID", "") << " (" << absl::StrJoin(attributes, ", ") << ")\n";
          }
          out.flush();
        }
        return static_cast<bool>(out);
      });
  if (!answer.ok()) return answer.status();
  if (answer->status >= 300) return AnswerError("events", *answer);
  return absl::OkStatus();
}

absl::Status RunRename(CriClient& client, const std::string& container, const std::string& new_name,
                       std::ostream& out) {
  absl::StatusOr<std::string> socket = DockerSocketOf(client);
  if (!socket.ok()) return socket.status();
  absl::StatusOr<nlohmann::json> renamed = CallDocker(
      *socket, "rename", "POST",
      absl::StrCat("/containers/", UrlEncode(container), "/rename?name=", UrlEncode(new_name)));
  if (!renamed.ok()) return renamed.status();
  out << new_name << "\n";
  return absl::OkStatus();
}

absl::Status RunPrune(CriClient& client, const std::string& what, bool all, std::ostream& out) {
  absl::StatusOr<std::string> socket = DockerSocketOf(client);
  if (!socket.ok()) return socket.status();
  // docker system prune's parts: stopped containers, unused networks, dangling (or, with
  // --all, unused) images. Volumes only when named: their data is not rebuilt from anything.
  std::vector<std::string> kinds;
  if (what == "system") {
    kinds = {"containers", "networks", "images"};
  } else if (what == "containers" || what == "images" || what == "volumes" || what == "networks") {
    kinds = {what};
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot prune \"", what, "\": give containers, images, volumes, networks or system"));
  }
  int64_t reclaimed = 0;
  for (const std::string& kind : kinds) {
    std::string path = absl::StrCat("/", kind, "/prune");
    if (kind == "images" && all) {
      absl::StrAppend(&path, "?filters=", UrlEncode(R"({"dangling":["false"]})"));
    }
    absl::StatusOr<nlohmann::json> pruned = CallDocker(*socket, kind + " prune", "POST", path);
    if (!pruned.ok()) return pruned.status();
    if (!pruned->is_object()) continue;
    for (const auto& [key, value] : pruned->items()) {
      if (!value.is_array()) continue;
      for (const nlohmann::json& item : value) {
        if (item.is_string()) {
          out << "Deleted " << kind.substr(0, kind.size() - 1) << ": " << item.get<std::string>()
              << "\n";
        } else if (item.is_object()) {  // images: {"Untagged": ...} or {"Deleted": ...}
          for (const auto& [verb, id] : item.items()) {
            if (id.is_string()) out << verb << ": " << id.get<std::string>() << "\n";
          }
        }
      }
    }
    reclaimed += pruned->value("SpaceReclaimed", int64_t{0});
  }
  out << "Total reclaimed space: " << HumanSize(static_cast<double>(reclaimed)) << "\n";
  return absl::OkStatus();
}

absl::Status RunSystemDf(CriClient& client, OutputFormat format, std::ostream& out) {
  absl::StatusOr<std::string> socket = DockerSocketOf(client);
  if (!socket.ok()) return socket.status();
  absl::StatusOr<nlohmann::json> usage = CallDocker(*socket, "system df", "GET", "/system/df");
  if (!usage.ok()) return usage.status();
  if (!usage->is_object()) return absl::InternalError("system df: kapald's answer is no object");
  if (format != OutputFormat::kTable) {
    PrintDocument(*usage, format, out);
    return absl::OkStatus();
  }
  auto list = [&](const char* key) {
    nlohmann::json items = usage->value(key, nlohmann::json::array());
    return items.is_array() ? items : nlohmann::json::array();
  };
  auto number = [](const nlohmann::json& item, const char* key) {
    const nlohmann::json& value = item.contains(key) ? item[key] : nlohmann::json();
    return value.is_number() ? value.get<int64_t>() : int64_t{0};
  };
  Table table({"TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"});
  auto row = [&](const char* type, size_t total, size_t active, int64_t size, int64_t free) {
    std::string reclaimable = HumanSize(static_cast<double>(free));
    if (size > 0) absl::StrAppend(&reclaimable, " (", free * 100 / size, "%)");
    table.AddRow({type, std::to_string(total), std::to_string(active),
                  HumanSize(static_cast<double>(size)), reclaimable});
  };
  // As the docker CLI sums them: an image is active while a container uses it, and only what
  // it does not share with others is reclaimable.
  size_t active = 0;
  int64_t unused_size = 0;
  for (const nlohmann::json& image : list("Images")) {
    if (number(image, "Containers") > 0) {
      ++active;
    } else {
      unused_size += number(image, "Size") - number(image, "SharedSize");
    }
  }
  row("Images", list("Images").size(), active, number(*usage, "LayersSize"), unused_size);
  active = 0;
  int64_t size = 0, unused = 0;
  for (const nlohmann::json& container : list("Containers")) {
    bool running = container.value("State", "") == "running";
    active += running ? 1 : 0;
    size += number(container, "SizeRw");
    if (!running) unused += number(container, "SizeRw");
  }
  row("Containers", list("Containers").size(), active, size, unused);
  active = 0;
  size = unused = 0;
  for (const nlohmann::json& volume : list("Volumes")) {
    nlohmann::json data = volume.value("UsageData", nlohmann::json::object());
    bool used = number(data, "RefCount") > 0;
    active += used ? 1 : 0;
    size += std::max<int64_t>(number(data, "Size"), 0);
    if (!used) unused += std::max<int64_t>(number(data, "Size"), 0);
  }
  row("Local Volumes", list("Volumes").size(), active, size, unused);
  active = 0;
  size = unused = 0;
  for (const nlohmann::json& record : list("BuildCache")) {
    bool in_use = record.value("InUse", false);
    active += in_use ? 1 : 0;
    size += number(record, "Size");
    if (!in_use) unused += number(record, "Size");
  }
  row("Build Cache", list("BuildCache").size(), active, size, unused);
  table.Print(out);
  return absl::OkStatus();
}

}  // namespace kapal::ctl
