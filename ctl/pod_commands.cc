#include "ctl/pod_commands.h"

#include <google/protobuf/util/json_util.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <fstream>
#include <iostream>
#include <random>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "base/files.h"
#include "ctl/image_commands.h"

namespace kapal::ctl {

namespace {

using namespace runtime::v1;  // NOLINT: CRI message names read best unqualified here

nlohmann::json YamlToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      nlohmann::json object = nlohmann::json::object();
      for (const auto& entry : node)
        object[entry.first.as<std::string>()] = YamlToJson(entry.second);
      return object;
    }
    case YAML::NodeType::Sequence: {
      nlohmann::json array = nlohmann::json::array();
      for (const auto& item : node) array.push_back(YamlToJson(item));
      return array;
    }
    case YAML::NodeType::Scalar: {
      // Protobuf's JSON parser takes numbers and booleans also as strings where the field
      // wants them, but strings only as strings: keep scalars as YAML typed them.
      const std::string& text = node.Scalar();
      if (node.Tag() == "!") return text;  // quoted
      if (text == "true" || text == "false") return text == "true";
      int64_t number = 0;
      if (absl::SimpleAtoi(text, &number)) return number;
      return text;
    }
    default:
      return nullptr;
  }
}

std::string Ago(int64_t unix_nanos) {
  int64_t seconds = (absl::GetCurrentTimeNanos() - unix_nanos) / 1000000000;
  if (seconds < 1) return "Less than a second ago";
  auto unit = [](int64_t n, const char* name) {
    return absl::StrCat(n, " ", name, n == 1 ? "" : "s", " ago");
  };
  if (seconds < 60) return unit(seconds, "second");
  if (seconds < 3600) return unit(seconds / 60, "minute");
  if (seconds < 86400) return unit(seconds / 3600, "hour");
  return unit(seconds / 86400, "day");
}

std::string ContainerStateWord(ContainerState state) {
  switch (state) {
    case CONTAINER_CREATED:
      return "Created";
    case CONTAINER_RUNNING:
      return "Running";
    case CONTAINER_EXITED:
      return "Exited";
    default:
      return "Unknown";
  }
}

absl::StatusOr<ContainerStatus> StatusOf(CriClient& client, const std::string& id) {
  ContainerStatusRequest request;
  request.set_container_id(id);
  ContainerStatusResponse response;
  grpc::Status status =
      client.Runtime().ContainerStatus(client.NewContext().get(), request, &response);
  if (!status.ok()) return RpcError("ContainerStatus", status);
  return response.status();
}

// Pulls IMAGE unless the runtime has it already.
absl::Status EnsureImage(CriClient& client, const std::string& image, bool terminal,
                         std::ostream& progress) {
  ImageStatusRequest request;
  request.mutable_image()->set_image(image);
  ImageStatusResponse response;
  grpc::Status status = client.Images().ImageStatus(client.NewContext().get(), request, &response);
  if (!status.ok()) return RpcError("ImageStatus", status);
  if (response.has_image()) return absl::OkStatus();
  PullCommand pull;
  pull.image = image;
  pull.terminal = terminal;
  return RunPull(client, pull, progress);
}

// "10s", "5m", "1h" or an RFC 3339 time; the earliest time to show, in ns since the epoch.
absl::StatusOr<int64_t> ParseSince(const std::string& since) {
  if (since.empty()) return 0;
  absl::Duration duration;
  if (absl::ParseDuration(since, &duration)) {
    return absl::GetCurrentTimeNanos() - absl::ToInt64Nanoseconds(duration);
  }
  absl::Time time;
  std::string error;
  if (absl::ParseTime(absl::RFC3339_full, since, &time, &error)) return absl::ToUnixNanos(time);
  return absl::InvalidArgumentError(
      absl::StrCat("--since \"", since, "\" is neither a duration (10s, 5m) nor an RFC 3339 time"));
}

// One CRI log line: time, stream, tag, content.
struct LogEntry {
  std::string timestamp;
  int64_t unix_nanos = 0;
  bool is_stderr = false;
  bool partial = false;
  std::string content;
};

std::optional<LogEntry> ParseLogLine(const std::string& line) {
  std::vector<std::string> parts = absl::StrSplit(line, absl::MaxSplits(' ', 3));
  if (parts.size() < 3) return std::nullopt;
  LogEntry entry;
  entry.timestamp = parts[0];
  absl::Time time;
  std::string error;
  if (absl::ParseTime(absl::RFC3339_full, parts[0], &time, &error)) {
    entry.unix_nanos = absl::ToUnixNanos(time);
  }
  entry.is_stderr = parts[1] == "stderr";
  entry.partial = parts[2] == "P";
  entry.content = parts.size() > 3 ? parts[3] : "";
  return entry;
}

// Prints the log from OFFSET on; returns the offset after the last whole line read.
std::streamoff PrintLog(const std::string& path, std::streamoff offset, const LogsCommand& command,
                        int64_t since, std::ostream& out, std::ostream& err, bool tail_applies) {
  std::ifstream in(path);
  if (!in) return offset;
  in.seekg(offset);
  std::vector<LogEntry> entries;
  std::string line;
  std::streamoff end = offset;
  while (std::getline(in, line)) {
    if (in.eof()) break;  // a line still being written: read it next time
    end = in.tellg();
    std::optional<LogEntry> entry = ParseLogLine(line);
    if (!entry.has_value() || entry->unix_nanos < since) continue;
    entries.push_back(std::move(*entry));
  }
  size_t first = 0;
  if (tail_applies && command.tail >= 0) {
    // Count whole lines (a P entry continues into the next).
    int64_t lines = 0;
    first = entries.size();
    while (first > 0) {
      if (!entries[first - 1].partial) {
        if (lines == command.tail) break;
        ++lines;
      }
      --first;
    }
  }
  bool line_start[2] = {true, true};
  for (size_t i = first; i < entries.size(); ++i) {
    const LogEntry& entry = entries[i];
    std::ostream& stream = entry.is_stderr ? err : out;
    if (command.timestamps && line_start[entry.is_stderr]) stream << entry.timestamp << " ";
    stream << entry.content;
    if (!entry.partial) stream << "\n";
    line_start[entry.is_stderr] = !entry.partial;
  }
  out.flush();
  err.flush();
  return end;
}

// A status response as inspect prints it: the status, and each verbose info value (JSON text)
// parsed in place, as crictl does.
nlohmann::json StatusDocument(const google::protobuf::Message& status,
                              const google::protobuf::Map<std::string, std::string>& info) {
  nlohmann::json document = {{"status", MessageToJson(status)}};
  for (const auto& [key, value] : info) {
    nlohmann::json parsed = nlohmann::json::parse(value, nullptr, false);
    document[key] = parsed.is_discarded() ? nlohmann::json(value) : parsed;
  }
  return document;
}

std::string RandomSuffix() {
  std::random_device random;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string suffix;
  for (int i = 0; i < 8; ++i) suffix += kHex[random() % 16];
  return suffix;
}

}  // namespace

absl::StatusOr<std::map<std::string, std::string>> ParseLabels(
    const std::vector<std::string>& labels) {
  std::map<std::string, std::string> selector;
  for (const std::string& label : labels) {
    size_t equals = label.find('=');
    if (equals == std::string::npos || equals == 0) {
      return absl::InvalidArgumentError(absl::StrCat("label \"", label, "\" is not KEY=VALUE"));
    }
    selector[label.substr(0, equals)] = label.substr(equals + 1);
  }
  return selector;
}

absl::Status LoadMessageFile(const std::string& path, google::protobuf::Message* message) {
  absl::StatusOr<std::string> text = base::ReadFile(path);
  if (!text.ok()) return text.status();
  std::string json_text = *text;
  nlohmann::json parsed = nlohmann::json::parse(json_text, nullptr, false);
  if (parsed.is_discarded()) {
    try {
      json_text = YamlToJson(YAML::Load(*text)).dump();
    } catch (const YAML::Exception& error) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, " is neither JSON nor YAML: ", error.what()));
    }
  }
  // KeyValue.value is bytes on the wire, so protobuf's JSON wants base64; crictl users write
  // env values as plain text, which is what they mean.
  if (message->GetDescriptor()->name() == "ContainerConfig") {
    nlohmann::json document = nlohmann::json::parse(json_text, nullptr, false);
    if (document.is_object() && document.contains("envs") && document["envs"].is_array()) {
      for (nlohmann::json& env : document["envs"]) {
        if (env.is_object() && env.contains("value") && env["value"].is_string()) {
          env["value"] = absl::Base64Escape(env["value"].get<std::string>());
        }
      }
      json_text = document.dump();
    }
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(json_text, message, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": not a ", message->GetDescriptor()->name(), ": ", std::string(status.message())));
  }
  return absl::OkStatus();
}

absl::Status RunRunPod(CriClient& client, const std::string& config_file,
                       const std::string& runtime_handler, std::ostream& out) {
  RunPodSandboxRequest request;
  if (absl::Status loaded = LoadMessageFile(config_file, request.mutable_config()); !loaded.ok()) {
    return loaded;
  }
  request.set_runtime_handler(runtime_handler);
  RunPodSandboxResponse response;
  grpc::Status status =
      client.Runtime().RunPodSandbox(client.LongContext().get(), request, &response);
  if (!status.ok()) return RpcError("RunPodSandbox", status);
  out << response.pod_sandbox_id() << "\n";
  return absl::OkStatus();
}

absl::Status RunStopPods(CriClient& client, const std::vector<std::string>& ids,
                         std::ostream& out) {
  for (const std::string& id : ids) {
    StopPodSandboxRequest request;
    request.set_pod_sandbox_id(id);
    StopPodSandboxResponse response;
    grpc::Status status =
        client.Runtime().StopPodSandbox(client.LongContext().get(), request, &response);
    if (!status.ok()) return RpcError("StopPodSandbox", status);
    out << "Stopped sandbox " << id << "\n";
  }
  return absl::OkStatus();
}

absl::Status RunRemovePods(CriClient& client, const std::vector<std::string>& ids, bool all,
                           std::ostream& out) {
  std::vector<std::string> targets = ids;
  if (all) {
    ListPodSandboxResponse pods;
    grpc::Status status = client.Runtime().ListPodSandbox(client.NewContext().get(), {}, &pods);
    if (!status.ok()) return RpcError("ListPodSandbox", status);
    for (const PodSandbox& pod : pods.items()) targets.push_back(pod.id());
  }
  if (targets.empty()) return absl::InvalidArgumentError("name the pods to remove, or use --all");
  for (const std::string& id : targets) {
    RemovePodSandboxRequest request;
    request.set_pod_sandbox_id(id);
    RemovePodSandboxResponse response;
    grpc::Status status =
        client.Runtime().RemovePodSandbox(client.LongContext().get(), request, &response);
    if (!status.ok()) return RpcError("RemovePodSandbox", status);
    out << "Removed sandbox " << id << "\n";
  }
  return absl::OkStatus();
}

absl::Status RunPods(CriClient& client, const PodsCommand& command, std::ostream& out) {
  ListPodSandboxRequest request;
  PodSandboxFilter* filter = request.mutable_filter();
  filter->set_id(command.id);
  if (!command.state.empty()) {
    std::string state = absl::AsciiStrToLower(command.state);
    if (state != "ready" && state != "notready") {
      return absl::InvalidArgumentError("--state must be ready or notready");
    }
    filter->mutable_state()->set_state(state == "ready" ? SANDBOX_READY : SANDBOX_NOTREADY);
  }
  absl::StatusOr<std::map<std::string, std::string>> labels = ParseLabels(command.labels);
  if (!labels.ok()) return labels.status();
  for (const auto& [key, value] : *labels) (*filter->mutable_label_selector())[key] = value;
  ListPodSandboxResponse response;
  grpc::Status status =
      client.Runtime().ListPodSandbox(client.NewContext().get(), request, &response);
  if (!status.ok()) return RpcError("ListPodSandbox", status);
  ListPodSandboxResponse shown;
  for (const PodSandbox& pod : response.items()) {
    if (!command.name.empty() && !absl::StrContains(pod.metadata().name(), command.name)) continue;
    if (!command.pod_namespace.empty() && pod.metadata().namespace_() != command.pod_namespace) {
      continue;
    }
    *shown.add_items() = pod;
  }
  std::sort(
      shown.mutable_items()->begin(), shown.mutable_items()->end(),
      [](const PodSandbox& a, const PodSandbox& b) { return a.created_at() > b.created_at(); });
  if (command.quiet) {
    for (const PodSandbox& pod : shown.items()) out << pod.id() << "\n";
    return absl::OkStatus();
  }
  if (command.format != OutputFormat::kTable) {
    PrintDocument(MessageToJson(shown), command.format, out);
    return absl::OkStatus();
  }
  Table table({"POD ID", "CREATED", "STATE", "NAME", "NAMESPACE", "ATTEMPT", "RUNTIME"});
  for (const PodSandbox& pod : shown.items()) {
    table.AddRow({ShortId(pod.id()), Ago(pod.created_at()),
                  pod.state() == SANDBOX_READY ? "Ready" : "NotReady", pod.metadata().name(),
                  pod.metadata().namespace_(), std::to_string(pod.metadata().attempt()),
                  pod.runtime_handler().empty() ? "(default)" : pod.runtime_handler()});
  }
  table.Print(out);
  return absl::OkStatus();
}

absl::Status RunInspectPods(CriClient& client, const std::vector<std::string>& ids,
                            OutputFormat format, std::ostream& out) {
  nlohmann::json documents = nlohmann::json::array();
  for (const std::string& id : ids) {
    PodSandboxStatusRequest request;
    request.set_pod_sandbox_id(id);
    request.set_verbose(true);
    PodSandboxStatusResponse response;
    grpc::Status status =
        client.Runtime().PodSandboxStatus(client.NewContext().get(), request, &response);
    if (!status.ok()) return RpcError("PodSandboxStatus", status);
    documents.push_back(StatusDocument(response.status(), response.info()));
  }
  if (format == OutputFormat::kTable) {
    for (const nlohmann::json& document : documents) {
      const nlohmann::json& status = document["status"];
      out << "ID: " << status.value("id", "") << "\n"
          << "Name: " << status["metadata"].value("name", "") << "\n"
          << "Namespace: " << status["metadata"].value("namespace", "") << "\n"
          << "State: " << status.value("state", "") << "\n"
          << "IP: " << status["network"].value("ip", "") << "\n";
    }
    return absl::OkStatus();
  }
  PrintDocument(documents.size() == 1 ? documents[0] : documents, format, out);
  return absl::OkStatus();
}

absl::Status RunCreateContainer(CriClient& client, const std::string& pod_id,
                                const std::string& container_file, const std::string& pod_file,
                                bool no_pull, std::ostream& out) {
  CreateContainerRequest request;
  request.set_pod_sandbox_id(pod_id);
  if (absl::Status loaded = LoadMessageFile(container_file, request.mutable_config());
      !loaded.ok()) {
    return loaded;
  }
  if (absl::Status loaded = LoadMessageFile(pod_file, request.mutable_sandbox_config());
      !loaded.ok()) {
    return loaded;
  }
  if (!no_pull) {
    if (absl::Status pulled =
            EnsureImage(client, request.config().image().image(), false, std::cerr);
        !pulled.ok()) {
      return pulled;
    }
  }
  CreateContainerResponse response;
  grpc::Status status =
      client.Runtime().CreateContainer(client.LongContext().get(), request, &response);
  if (!status.ok()) return RpcError("CreateContainer", status);
  out << response.container_id() << "\n";
  return absl::OkStatus();
}

absl::Status RunStartContainers(CriClient& client, const std::vector<std::string>& ids,
                                std::ostream& out) {
  for (const std::string& id : ids) {
    StartContainerRequest request;
    request.set_container_id(id);
    StartContainerResponse response;
    grpc::Status status =
        client.Runtime().StartContainer(client.LongContext().get(), request, &response);
    if (!status.ok()) return RpcError("StartContainer", status);
    out << id << "\n";
  }
  return absl::OkStatus();
}

absl::Status RunStopContainers(CriClient& client, const std::vector<std::string>& ids,
                               int64_t timeout_seconds, std::ostream& out) {
  for (const std::string& id : ids) {
    StopContainerRequest request;
    request.set_container_id(id);
    request.set_timeout(timeout_seconds);
    StopContainerResponse response;
    grpc::Status status =
        client.Runtime().StopContainer(client.LongContext().get(), request, &response);
    if (!status.ok()) return RpcError("StopContainer", status);
    out << id << "\n";
  }
  return absl::OkStatus();
}

absl::Status RunRemoveContainers(CriClient& client, const std::vector<std::string>& ids, bool force,
                                 bool all, std::ostream& out) {
  std::vector<std::string> targets = ids;
  if (all) {
    ListContainersResponse containers;
    grpc::Status status =
        client.Runtime().ListContainers(client.NewContext().get(), {}, &containers);
    if (!status.ok()) return RpcError("ListContainers", status);
    for (const auto& container : containers.containers()) targets.push_back(container.id());
  }
  if (targets.empty()) {
    return absl::InvalidArgumentError("name the containers to remove, or use --all");
  }
  for (const std::string& id : targets) {
    if (!force) {
      absl::StatusOr<ContainerStatus> status = StatusOf(client, id);
      if (!status.ok()) return status.status();
      if (status->state() == CONTAINER_RUNNING) {
        return absl::FailedPreconditionError(absl::StrCat(
            "container ", id, " is running: stop it first, or remove it with --force"));
      }
    }
    RemoveContainerRequest request;
    request.set_container_id(id);
    RemoveContainerResponse response;
    grpc::Status status =
        client.Runtime().RemoveContainer(client.LongContext().get(), request, &response);
    if (!status.ok()) return RpcError("RemoveContainer", status);
    out << id << "\n";
  }
  return absl::OkStatus();
}

absl::Status RunPs(CriClient& client, const PsCommand& command, std::ostream& out) {
  ListContainersRequest request;
  ContainerFilter* filter = request.mutable_filter();
  filter->set_id(command.id);
  filter->set_pod_sandbox_id(command.pod);
  if (!command.state.empty()) {
    ContainerState state;
    std::string name = "CONTAINER_" + absl::AsciiStrToUpper(command.state);
    if (!ContainerState_Parse(name, &state)) {
      return absl::InvalidArgumentError("--state must be created, running, exited or unknown");
    }
    filter->mutable_state()->set_state(state);
  } else if (!command.all) {
    filter->mutable_state()->set_state(CONTAINER_RUNNING);
  }
  absl::StatusOr<std::map<std::string, std::string>> labels = ParseLabels(command.labels);
  if (!labels.ok()) return labels.status();
  for (const auto& [key, value] : *labels) (*filter->mutable_label_selector())[key] = value;
  ListContainersResponse response;
  grpc::Status status =
      client.Runtime().ListContainers(client.NewContext().get(), request, &response);
  if (!status.ok()) return RpcError("ListContainers", status);
  ListContainersResponse shown;
  for (const auto& container : response.containers()) {
    if (!command.name.empty() && !absl::StrContains(container.metadata().name(), command.name)) {
      continue;
    }
    *shown.add_containers() = container;
  }
  std::sort(shown.mutable_containers()->begin(), shown.mutable_containers()->end(),
            [](const auto& a, const auto& b) { return a.created_at() > b.created_at(); });
  if (command.latest && shown.containers_size() > 1) {
    shown.mutable_containers()->DeleteSubrange(1, shown.containers_size() - 1);
  }
  if (command.quiet) {
    for (const auto& container : shown.containers()) out << container.id() << "\n";
    return absl::OkStatus();
  }
  if (command.format != OutputFormat::kTable) {
    PrintDocument(MessageToJson(shown), command.format, out);
    return absl::OkStatus();
  }
  // Pod names for the POD column.
  ListPodSandboxResponse pods;
  (void)client.Runtime().ListPodSandbox(client.NewContext().get(), {}, &pods);
  std::map<std::string, std::string> pod_names;
  for (const PodSandbox& pod : pods.items()) pod_names[pod.id()] = pod.metadata().name();
  Table table({"CONTAINER", "IMAGE", "CREATED", "STATE", "NAME", "ATTEMPT", "POD ID", "POD"});
  for (const auto& container : shown.containers()) {
    table.AddRow({ShortId(container.id()), container.image().image(), Ago(container.created_at()),
                  ContainerStateWord(container.state()), container.metadata().name(),
                  std::to_string(container.metadata().attempt()),
                  ShortId(container.pod_sandbox_id()), pod_names[container.pod_sandbox_id()]});
  }
  table.Print(out);
  return absl::OkStatus();
}

absl::Status RunInspectContainers(CriClient& client, const std::vector<std::string>& ids,
                                  OutputFormat format, std::ostream& out) {
  nlohmann::json documents = nlohmann::json::array();
  for (const std::string& id : ids) {
    ContainerStatusRequest request;
    request.set_container_id(id);
    request.set_verbose(true);
    ContainerStatusResponse response;
    grpc::Status status =
        client.Runtime().ContainerStatus(client.NewContext().get(), request, &response);
    if (!status.ok()) return RpcError("ContainerStatus", status);
    documents.push_back(StatusDocument(response.status(), response.info()));
  }
  if (format == OutputFormat::kTable) {
    for (const nlohmann::json& document : documents) {
      const nlohmann::json& status = document["status"];
      out << "ID: " << status.value("id", "") << "\n"
          << "Name: " << status["metadata"].value("name", "") << "\n"
          << "State: " << status.value("state", "") << "\n"
          << "Exit code: " << status.value("exitCode", 0) << "\n"
          << "Reason: " << status.value("reason", "") << "\n"
          << "Log: " << status.value("logPath", "") << "\n";
    }
    return absl::OkStatus();
  }
  PrintDocument(documents.size() == 1 ? documents[0] : documents, format, out);
  return absl::OkStatus();
}

absl::Status RunLogs(CriClient& client, const LogsCommand& command, std::ostream& out,
                     std::ostream& err) {
  absl::StatusOr<ContainerStatus> status = StatusOf(client, command.id);
  if (!status.ok()) return status.status();
  absl::StatusOr<int64_t> since = ParseSince(command.since);
  if (!since.ok()) return since.status();
  const std::string& path = status->log_path();
  if (path.empty()) return absl::NotFoundError("the container has no log path");
  std::streamoff offset = PrintLog(path, 0, command, *since, out, err, /*tail_applies=*/true);
  if (!command.follow) return absl::OkStatus();
  // Follow until the container has exited and its log is read to the end; bounded by nothing
  // but the container (as crictl logs -f), checking the state every 200 ms.
  for (;;) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    offset = PrintLog(path, offset, command, *since, out, err, /*tail_applies=*/false);
    absl::StatusOr<ContainerStatus> now = StatusOf(client, command.id);
    if (!now.ok() || now->state() == CONTAINER_EXITED) {
      PrintLog(path, offset, command, *since, out, err, false);
      return absl::OkStatus();
    }
  }
}

absl::Status RunExec(CriClient& client, const std::string& id, const std::vector<std::string>& cmd,
                     int64_t timeout_seconds, std::ostream& out, std::ostream& err,
                     int* exit_code) {
  ExecSyncRequest request;
  request.set_container_id(id);
  for (const std::string& part : cmd) request.add_cmd(part);
  request.set_timeout(timeout_seconds);
  ExecSyncResponse response;
  grpc::Status status = client.Runtime().ExecSync(client.LongContext().get(), request, &response);
  if (!status.ok()) return RpcError("ExecSync", status);
  out << response.stdout();
  err << response.stderr();
  *exit_code = response.exit_code();
  return absl::OkStatus();
}

absl::Status RunRun(CriClient& client, const RunCommandLine& command, std::ostream& out,
                    std::ostream& err, int* exit_code) {
  if (absl::Status pulled = EnsureImage(client, command.image, command.terminal, err);
      !pulled.ok()) {
    return pulled;
  }
  std::string name = command.name.empty() ? "kapal-run-" + RandomSuffix() : command.name;
  PodSandboxConfig pod;
  pod.mutable_metadata()->set_name(name);
  pod.mutable_metadata()->set_namespace_("default");
  pod.mutable_metadata()->set_uid(name + "-" + RandomSuffix());
  pod.set_hostname(name);
  (*pod.mutable_labels())["io.kapal.run"] = name;
  for (const std::string& port : command.ports) {
    std::string spec = port;
    Protocol protocol = TCP;
    if (absl::EndsWith(spec, "/udp")) {
      protocol = UDP;
      spec.resize(spec.size() - 4);
    } else if (absl::EndsWith(spec, "/tcp")) {
      spec.resize(spec.size() - 4);
    }
    std::vector<std::string> parts = absl::StrSplit(spec, ':');
    int host = 0, container = 0;
    std::string host_ip;
    if (parts.size() == 3) host_ip = parts[0], parts.erase(parts.begin());
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &host) ||
        !absl::SimpleAtoi(parts[1], &container)) {
      return absl::InvalidArgumentError(
          absl::StrCat("-p \"", port, "\" is not [IP:]HOST_PORT:CONTAINER_PORT[/udp]"));
    }
    PortMapping* mapping = pod.add_port_mappings();
    mapping->set_host_port(host);
    mapping->set_container_port(container);
    mapping->set_host_ip(host_ip);
    mapping->set_protocol(protocol);
  }
  ContainerConfig container;
  container.mutable_metadata()->set_name(name);
  container.mutable_image()->set_image(command.image);
  for (const std::string& arg : command.args) container.add_args(arg);
  container.set_tty(command.tty);
  // As `docker run -i`: stdin stays open while we are attached, and closes when we detach.
  container.set_stdin(command.interactive);
  container.set_stdin_once(command.interactive);
  for (const std::string& entry : command.env) {
    size_t equals = entry.find('=');
    if (equals == std::string::npos || equals == 0) {
      return absl::InvalidArgumentError(absl::StrCat("-e \"", entry, "\" is not KEY=VALUE"));
    }
    KeyValue* env = container.add_envs();
    env->set_key(entry.substr(0, equals));
    env->set_value(entry.substr(equals + 1));
  }
  for (const std::string& volume : command.volumes) {
    std::vector<std::string> parts = absl::StrSplit(volume, ':');
    if (parts.size() < 2 || parts.size() > 3 ||
        (parts.size() == 3 && parts[2] != "ro" && parts[2] != "rw")) {
      return absl::InvalidArgumentError(
          absl::StrCat("-v \"", volume, "\" is not HOST_PATH:CONTAINER_PATH[:ro]"));
    }
    Mount* mount = container.add_mounts();
    mount->set_host_path(parts[0]);
    mount->set_container_path(parts[1]);
    mount->set_readonly(parts.size() == 3 && parts[2] == "ro");
  }

  RunPodSandboxRequest run_pod;
  *run_pod.mutable_config() = pod;
  run_pod.set_runtime_handler(command.runtime_handler);
  RunPodSandboxResponse pod_response;
  grpc::Status status =
      client.Runtime().RunPodSandbox(client.LongContext().get(), run_pod, &pod_response);
  if (!status.ok()) return RpcError("RunPodSandbox", status);
  const std::string pod_id = pod_response.pod_sandbox_id();
  auto remove_pod = [&] {
    RemovePodSandboxRequest request;
    request.set_pod_sandbox_id(pod_id);
    RemovePodSandboxResponse response;
    return client.Runtime().RemovePodSandbox(client.LongContext().get(), request, &response);
  };
  CreateContainerRequest create;
  create.set_pod_sandbox_id(pod_id);
  *create.mutable_config() = container;
  *create.mutable_sandbox_config() = pod;
  CreateContainerResponse created;
  status = client.Runtime().CreateContainer(client.LongContext().get(), create, &created);
  if (!status.ok()) {
    remove_pod();  // nothing half-made stays
    return RpcError("CreateContainer", status);
  }
  StartContainerRequest start;
  start.set_container_id(created.container_id());
  StartContainerResponse started;
  status = client.Runtime().StartContainer(client.LongContext().get(), start, &started);
  if (!status.ok()) {
    if (command.remove) remove_pod();
    return RpcError("StartContainer", status);
  }
  if (command.detach) {
    out << created.container_id() << "\n";
    return absl::OkStatus();
  }
  if (command.interactive || command.tty) {
    InteractiveOptions options{command.interactive, command.tty};
    int ignored = 0;
    if (absl::Status attached = RunAttach(client, created.container_id(), options, &ignored);
        !attached.ok()) {
      return attached;
    }
  } else {
    LogsCommand logs;
    logs.id = created.container_id();
    logs.follow = true;
    if (absl::Status streamed = RunLogs(client, logs, out, err); !streamed.ok()) return streamed;
  }
  // The attach ends when the container's output does; its exit is recorded a moment later.
  absl::StatusOr<ContainerStatus> final_status = StatusOf(client, created.container_id());
  for (int i = 0; i < 200 && final_status.ok() && final_status->state() != CONTAINER_EXITED; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
    final_status = StatusOf(client, created.container_id());
  }
  if (!final_status.ok()) return final_status.status();
  *exit_code = final_status->exit_code();
  if (command.remove) {
    status = remove_pod();
    if (!status.ok()) return RpcError("RemovePodSandbox", status);
  }
  return absl::OkStatus();
}

}  // namespace kapal::ctl
