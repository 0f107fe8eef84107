// The container endpoints of the Docker API: create, list, inspect, start, stop, kill, restart,
// wait, attach, resize, logs, stats, remove.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "base/child_process.h"
#include "base/files.h"
#include "base/unique_fd.h"
#include "docker/api_impl.h"
#include "docker/hijack.h"
#include "docker/translate.h"
#include "runtime/log_tail.h"
#include "runtime/signals.h"
#include "shim/exit_file.h"
#include "streaming/sessions.h"

namespace kapal::docker {

namespace {

constexpr auto kWaitSlice = std::chrono::milliseconds(500);

int64_t NowSeconds() { return runtime::NowNanos() / 1000000000; }

// A TCP port no one listens on now, for "-p 80" (Docker picks one the same way).
absl::StatusOr<int> FreePort() {
  base::UniqueFd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe) return base::ErrnoStatus(errno, "socket");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  if (::bind(probe.Get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    return base::ErrnoStatus(errno, "bind a free port");
  }
  socklen_t length = sizeof address;
  ::getsockname(probe.Get(), reinterpret_cast<sockaddr*>(&address), &length);
  return ntohs(address.sin_port);
}

// Docker calls a container in no known state "dead".
std::string StateName(runtime::v1::ContainerState state) {
  std::string word = runtime::ContainerStateWord(state);
  return word == "unknown" ? "dead" : word;
}

std::string StatusText(const runtime::Container& c) {
  int64_t now = NowSeconds();
  switch (c.state) {
    case runtime::v1::CONTAINER_CREATED:
      return "Created";
    case runtime::v1::CONTAINER_RUNNING:
      return "Up " + HumanDuration(now - c.started_at / 1000000000);
    case runtime::v1::CONTAINER_EXITED:
      return absl::StrCat("Exited (", c.exit_code, ") ",
                          HumanDuration(now - c.finished_at / 1000000000), " ago");
    default:
      return "Dead";
  }
}

nlohmann::json StringsOrNull(const google::protobuf::RepeatedPtrField<std::string>& words) {
  if (words.empty()) return nullptr;
  return nlohmann::json(std::vector<std::string>(words.begin(), words.end()));
}

// What runs: the create's entrypoint and cmd, else the image's (as the core resolves them).
std::pair<nlohmann::json, nlohmann::json> EffectiveCommand(
    const runtime::v1::ContainerConfig& config, const nlohmann::json& image_config) {
  nlohmann::json entrypoint = StringsOrNull(config.command());
  nlohmann::json cmd = StringsOrNull(config.args());
  if (config.command().empty()) {
    entrypoint = image_config.value("Entrypoint", nlohmann::json());
    if (config.args().empty()) cmd = image_config.value("Cmd", nlohmann::json());
  }
  return {entrypoint, cmd};
}

std::string CommandLine(const nlohmann::json& entrypoint, const nlohmann::json& cmd) {
  std::vector<std::string> words;
  for (const nlohmann::json* part : {&entrypoint, &cmd}) {
    if (!part->is_array()) continue;
    for (const nlohmann::json& word : *part) {
      if (word.is_string()) words.push_back(word.get<std::string>());
    }
  }
  return absl::StrJoin(words, " ");
}

nlohmann::json PortsOf(const DockerContainer& found) {
  nlohmann::json ports = nlohmann::json::array();
  if (!found.pod.has_value()) return ports;
  for (const runtime::v1::PortMapping& mapping : found.pod->config.port_mappings()) {
    std::string protocol = mapping.protocol() == runtime::v1::UDP    ? "udp"
                           : mapping.protocol() == runtime::v1::SCTP ? "sctp"
                                                                     : "tcp";
    ports.push_back({{"IP", mapping.host_ip().empty() ? "0.0.0.0" : mapping.host_ip()},
                     {"PrivatePort", mapping.container_port()},
                     {"PublicPort", mapping.host_port()},
                     {"Type", protocol}});
  }
  return ports;
}

std::string NetworkModeOf(const DockerContainer& found) {
  std::string mode =
      found.create.value("HostConfig", nlohmann::json::object()).value("NetworkMode", "");
  return mode.empty() ? "default" : mode;
}

nlohmann::json NetworksOf(const DockerContainer& found) {
  nlohmann::json networks = nlohmann::json::object();
  std::string mode = NetworkModeOf(found);
  if (mode == "host" || mode == "none") {
    networks[mode] = {{"IPAddress", ""}, {"NetworkID", mode}};
    return networks;
  }
  std::string ip = found.pod.has_value() && !found.pod->ips.empty() ? found.pod->ips.front() : "";
  std::string gateway;
  if (found.pod.has_value() && found.pod->cni_result.is_object()) {
    for (const nlohmann::json& item : found.pod->cni_result.value("ips", nlohmann::json::array())) {
      if (item.is_object() && item.contains("gateway")) {
        gateway = item.value("gateway", "");
        break;
      }
    }
  }
  networks[mode == "default" ? "bridge" : mode] = {
      {"IPAddress", ip}, {"Gateway", gateway}, {"NetworkID", mode == "default" ? "bridge" : mode}};
  return networks;
}

nlohmann::json MountsJson(const nlohmann::json& create, const std::string& volume_root) {
  nlohmann::json mounts = nlohmann::json::array();
  absl::StatusOr<std::vector<VolumeMount>> parsed = MountsOf(create);
  if (!parsed.ok()) return mounts;
  for (const VolumeMount& mount : *parsed) {
    nlohmann::json item = {{"Type", mount.kind},
                           {"Destination", mount.destination},
                           {"Mode", mount.read_only ? "ro" : ""},
                           {"RW", !mount.read_only},
                           {"Propagation", "rprivate"}};
    if (mount.kind == "volume") {
      item["Name"] = mount.source;
      item["Source"] = absl::StrCat(volume_root, "/", mount.source, "/_data");
      item["Driver"] = "local";
    } else {
      item["Source"] = mount.source;
    }
    mounts.push_back(item);
  }
  return mounts;
}

// One entry of a CRI log file: "TIME STREAM P|F TEXT".
struct LogEntry {
  int64_t time_nanos = 0;
  std::string time_text;
  bool is_stderr = false;
  bool partial = false;
  std::string text;
};

std::optional<LogEntry> ParseLogLine(absl::string_view line) {
  std::vector<absl::string_view> fields = absl::StrSplit(line, absl::MaxSplits(' ', 3));
  if (fields.size() < 3) return std::nullopt;
  LogEntry entry;
  entry.time_text = std::string(fields[0]);
  absl::Time time;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, entry.time_text, &time, &error)) return std::nullopt;
  entry.time_nanos = absl::ToUnixNanos(time);
  entry.is_stderr = fields[1] == "stderr";
  entry.partial = fields[2] == "P";
  if (fields.size() == 4) entry.text = std::string(fields[3]);
  if (!entry.partial) entry.text += "\n";
  return entry;
}

// A time parameter of logs: Unix seconds with an optional fraction; 0 when absent.
int64_t TimeParameter(const std::string& text) {
  if (text.empty()) return 0;
  double seconds = 0;
  if (!absl::SimpleAtod(text, &seconds)) return 0;
  return static_cast<int64_t>(seconds * 1e9);
}

// The host's CPU time in nanoseconds (/proc/stat), Docker's system_cpu_usage.
// docker stats' PIDS column.
nlohmann::json PidsJson(const runtime::CgroupSample& sample) {
  nlohmann::json pids = nlohmann::json::object();
  if (sample.processes.has_value()) pids["current"] = *sample.processes;
  if (sample.processes_limit.has_value()) pids["limit"] = *sample.processes_limit;
  return pids;
}

// docker stats' BLOCK I/O column: the CLI sums the "read" and "write" entries.
nlohmann::json BlkioJson(const runtime::CgroupSample& sample) {
  nlohmann::json entries = nlohmann::json::array();
  if (sample.io_read_bytes.has_value()) {
    entries.push_back(
        {{"major", 0}, {"minor", 0}, {"op", "read"}, {"value", *sample.io_read_bytes}});
  }
  if (sample.io_write_bytes.has_value()) {
    entries.push_back(
        {{"major", 0}, {"minor", 0}, {"op", "write"}, {"value", *sample.io_write_bytes}});
  }
  return {{"io_service_bytes_recursive", entries}};
}

uint64_t SystemCpuNanos() {
  std::ifstream stat("/proc/stat");
  std::string label;
  stat >> label;
  uint64_t total = 0, value = 0;
  for (int i = 0; i < 8 && stat >> value; ++i) total += value;
  long ticks = ::sysconf(_SC_CLK_TCK);
  return ticks > 0 ? total * (1000000000ULL / static_cast<uint64_t>(ticks)) : 0;
}

}  // namespace

nlohmann::json Api::Impl::ContainerSummary(const DockerContainer& found) {
  bool paused = found.container.state == runtime::v1::CONTAINER_RUNNING &&
                runtime.ContainerPaused(found.container.id);
  const runtime::Container& c = found.container;
  absl::StatusOr<images::ImageRecord> image = runtime.images().Find(c.image_id);
  nlohmann::json image_config =
      image.ok() ? ImageConfigOf(image->config_json) : nlohmann::json::object();
  auto [entrypoint, cmd] = EffectiveCommand(c.config, image_config);
  std::string image_name = found.create.value("Image", "");
  nlohmann::json labels = nlohmann::json::object();
  for (const auto& [key, value] : c.config.labels()) labels[key] = value;
  std::string state = paused ? "paused" : StateName(c.state);
  std::string status = StatusText(c);
  if (paused) {
    status += " (Paused)";
  } else if (c.state == runtime::v1::CONTAINER_RUNNING) {
    if (std::optional<HealthState> checked = HealthOf(c.id); checked.has_value()) {
      status +=
          checked->status == "starting" ? " (health: starting)" : " (" + checked->status + ")";
    }
  } else if (c.state == runtime::v1::CONTAINER_EXITED && Restarting(c.id)) {
    state = "restarting";
    status = absl::StrCat("Restarting (", c.exit_code, ") ",
                          HumanDuration(NowSeconds() - c.finished_at / 1000000000), " ago");
  }
  return {{"Id", c.id},
          {"Names", {"/" + found.name}},
          {"Image", image_name.empty() ? c.image_ref : image_name},
          {"ImageID", c.image_id},
          {"Command", CommandLine(entrypoint, cmd)},
          {"Created", c.created_at / 1000000000},
          {"Ports", PortsOf(found)},
          {"Labels", labels},
          {"State", state},
          {"Status", status},
          {"HostConfig", {{"NetworkMode", NetworkModeOf(found)}}},
          {"NetworkSettings", {{"Networks", NetworksOf(found)}}},
          {"Mounts", MountsJson(found.create, options.root_dir + "/volumes")}};
}

nlohmann::json Api::Impl::ContainerInspect(const DockerContainer& found) {
  bool paused = found.container.state == runtime::v1::CONTAINER_RUNNING &&
                runtime.ContainerPaused(found.container.id);
  const runtime::Container& c = found.container;
  absl::StatusOr<images::ImageRecord> image = runtime.images().Find(c.image_id);
  nlohmann::json image_config =
      image.ok() ? ImageConfigOf(image->config_json) : nlohmann::json::object();
  auto [entrypoint, cmd] = EffectiveCommand(c.config, image_config);
  std::vector<std::string> path_and_args;
  for (const nlohmann::json* part : {&entrypoint, &cmd}) {
    if (!part->is_array()) continue;
    for (const nlohmann::json& word : *part) {
      if (word.is_string()) path_and_args.push_back(word.get<std::string>());
    }
  }
  nlohmann::json env = image_config.value("Env", nlohmann::json::array());
  if (!env.is_array()) env = nlohmann::json::array();
  for (const runtime::v1::KeyValue& kv : c.config.envs()) {
    env.push_back(absl::StrCat(kv.key(), "=", kv.value()));
  }
  nlohmann::json labels = nlohmann::json::object();
  for (const auto& [key, value] : c.config.labels()) labels[key] = value;
  bool running = c.state == runtime::v1::CONTAINER_RUNNING;
  int pid = 0;
  if (running) {
    absl::StatusOr<std::string> text = base::ReadFile(c.bundle + "/" + shim::kPidFile);
    if (text.ok()) (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &pid);
  }
  nlohmann::json host_config = found.create.value("HostConfig", nlohmann::json::object());
  if (!host_config.is_object()) host_config = nlohmann::json::object();
  if (!host_config.contains("NetworkMode")) host_config["NetworkMode"] = "default";
  if (!host_config.contains("RestartPolicy")) {
    host_config["RestartPolicy"] = {{"Name", "no"}, {"MaximumRetryCount", 0}};
  }
  host_config["Runtime"] = found.pod.has_value() && !found.pod->runtime_handler.empty()
                               ? found.pod->runtime_handler
                               : options.default_runtime;
  nlohmann::json ports = nlohmann::json::object();
  for (const nlohmann::json& port : PortsOf(found)) {
    ports[absl::StrCat(port["PrivatePort"].get<int>(), "/", port["Type"].get<std::string>())]
        .push_back(
            {{"HostIp", port["IP"]}, {"HostPort", std::to_string(port["PublicPort"].get<int>())}});
  }
  nlohmann::json networks = NetworksOf(found);
  std::string ip;
  for (const auto& [name, network] : networks.items()) ip = network.value("IPAddress", "");
  bool restarting = c.state == runtime::v1::CONTAINER_EXITED && Restarting(c.id);
  nlohmann::json state = {{"Status", paused       ? "paused"
                                     : restarting ? "restarting"
                                                  : StateName(c.state)},
                          {"Running", running},
                          {"Paused", paused},
                          {"Restarting", restarting},
                          {"OOMKilled", c.reason == "OOMKilled"},
                          {"Dead", false},
                          {"Pid", pid},
                          {"ExitCode", c.exit_code},
                          {"Error", c.reason == "StartError" ? c.message : ""},
                          {"StartedAt", DockerTime(c.started_at)},
                          {"FinishedAt", DockerTime(c.finished_at)}};
  if (std::optional<HealthState> checked = HealthOf(c.id); checked.has_value()) {
    state["Health"] = {{"Status", checked->status},
                       {"FailingStreak", checked->failing_streak},
                       {"Log", checked->log}};
  }
  int restart_count = 0;
  if (auto count = c.config.annotations().find(kRestartCountAnnotation);
      count != c.config.annotations().end()) {
    (void)absl::SimpleAtoi(count->second, &restart_count);
  }
  nlohmann::json healthcheck = found.create.value("Healthcheck", nlohmann::json());
  if (!healthcheck.is_object()) healthcheck = image_config.value("Healthcheck", nlohmann::json());
  std::string working_dir = c.config.working_dir().empty()
                                ? image_config.value("WorkingDir", std::string())
                                : c.config.working_dir();
  return {{"Id", c.id},
          {"Created", DockerTime(c.created_at)},
          {"Path", path_and_args.empty() ? "" : path_and_args.front()},
          {"Args", path_and_args.size() > 1 ? nlohmann::json(std::vector<std::string>(
                                                  path_and_args.begin() + 1, path_and_args.end()))
                                            : nlohmann::json::array()},
          {"State", state},
          {"Image", c.image_id},
          {"ResolvConfPath", found.pod.has_value() ? found.pod->dir + "/resolv.conf" : ""},
          {"HostnamePath", found.pod.has_value() ? found.pod->dir + "/hostname" : ""},
          {"HostsPath", found.pod.has_value() ? found.pod->dir + "/hosts" : ""},
          {"LogPath", c.log_path},
          {"Name", "/" + found.name},
          {"RestartCount", restart_count},
          {"Driver", options.storage_driver},
          {"Platform", "linux"},
          {"MountLabel", ""},
          {"ProcessLabel", ""},
          {"AppArmorProfile", ""},
          {"ExecIDs", nullptr},
          {"HostConfig", host_config},
          {"GraphDriver", {{"Name", options.storage_driver}, {"Data", nlohmann::json::object()}}},
          {"Mounts", MountsJson(found.create, options.root_dir + "/volumes")},
          {"Config",
           {{"Hostname", found.pod.has_value() ? found.pod->config.hostname() : ""},
            {"Domainname", ""},
            {"User", found.create.value("User", image_config.value("User", std::string()))},
            {"AttachStdin", found.create.value("AttachStdin", false)},
            {"AttachStdout", found.create.value("AttachStdout", false)},
            {"AttachStderr", found.create.value("AttachStderr", false)},
            {"ExposedPorts", found.create.value("ExposedPorts", nlohmann::json::object())},
            {"Tty", c.config.tty()},
            {"OpenStdin", c.config.stdin()},
            {"StdinOnce", c.config.stdin_once()},
            {"Env", env},
            {"Cmd", cmd},
            {"Image", found.create.value("Image", c.image_ref)},
            {"Volumes", nullptr},
            {"WorkingDir", working_dir},
            {"Entrypoint", entrypoint},
            {"OnBuild", nullptr},
            {"Healthcheck", healthcheck},
            {"Labels", labels}}},
          {"NetworkSettings",
           {{"Bridge", ""},
            {"SandboxID", c.pod_id},
            {"HairpinMode", false},
            {"Ports", ports},
            {"SandboxKey", found.pod.has_value() ? found.pod->dir + "/net" : ""},
            {"IPAddress", ip},
            {"Networks", networks}}}};
}

void Api::Impl::CreateContainer(const Request& request, Responder& responder) {
  nlohmann::json body = nlohmann::json::parse(request.body, nullptr, false);
  if (!body.is_object()) return responder.Error(400, "the create body is not a JSON object");
  std::string requested = request.Query("name");
  std::string name;
  if (requested.empty()) {
    name = GenerateContainerName();
  } else {
    absl::StatusOr<std::string> checked = CheckContainerName(requested);
    if (!checked.ok()) return ReplyError(responder, checked.status());
    name = *checked;
  }
  // The name is checked and taken under one lock: two creates (or a rename) of one name
  // cannot both pass the check.
  std::unique_lock name_guard(names_mutex);
  if (absl::Status free = NameIsFree(name); !free.ok()) return ReplyError(responder, free);
  std::string image_name = body.value("Image", "");
  if (image_name.empty()) return responder.Error(400, "the create body names no Image");
  absl::StatusOr<images::ImageRecord> image = runtime.images().Find(image_name);
  if (!image.ok()) {
    if (absl::IsNotFound(image.status())) {
      return responder.Error(404, absl::StrCat("No such image: ", image_name));
    }
    return ReplyError(responder, image.status());
  }
  TranslateContext context;
  context.image_id = image->id.String();
  context.image_reference = image_name;
  context.volume_path = [this](const std::string& volume) -> absl::StatusOr<std::string> {
    absl::StatusOr<runtime::Volume> made = runtime.volumes().Create(volume, "local", {}, {});
    if (!made.ok()) return made.status();
    return made->mountpoint;
  };
  context.network_exists = [this](const std::string& network) { return NetworkExists(network); };
  context.free_port = FreePort;
  absl::StatusOr<Translated> translated = TranslateCreate(body, name, context);
  if (!translated.ok()) return ReplyError(responder, translated.status());
  std::string handler = body.value("HostConfig", nlohmann::json::object()).value("Runtime", "");
  absl::StatusOr<std::string> pod_id = runtime.RunPod(translated->pod, handler);
  if (!pod_id.ok()) return ReplyError(responder, pod_id.status());
  absl::StatusOr<std::string> id = runtime.CreateContainer(*pod_id, translated->container);
  if (!id.ok()) {
    (void)runtime.StopPod(*pod_id);
    (void)runtime.RemovePod(*pod_id);
    return ReplyError(responder, id.status());
  }
  name_guard.unlock();
  if (body.value("HostConfig", nlohmann::json::object()).value("AutoRemove", false)) {
    WatchForRemoval(*id);
  }
  logger.Info("docker: container ", name, " created as ", *id);
  responder.Json(201, {{"Id", *id}, {"Warnings", translated->warnings}});
}

absl::Status Api::Impl::NameIsFree(const std::string& name) {
  for (const DockerContainer& other : Containers()) {
    if (other.name == name) {
      return absl::AlreadyExistsError(
          absl::StrCat("Conflict. The container name \"/", name,
                       "\" is already in use by container \"", other.container.id,
                       "\". You have to remove (or rename) that container to be able to "
                       "reuse that name."));
    }
  }
  return absl::OkStatus();
}

void Api::Impl::RenameContainer(const std::string& ref, const Request& request,
                                Responder& responder) {
  absl::StatusOr<DockerContainer> found = FindContainer(ref);
  if (!found.ok()) return ReplyError(responder, found.status());
  absl::StatusOr<std::string> name = CheckContainerName(request.Query("name"));
  if (!name.ok()) return ReplyError(responder, name.status());
  if (*name == found->name) {
    return responder.Error(400, "Renaming a container with the same name as its current name");
  }
  std::lock_guard name_guard(names_mutex);
  if (absl::Status free = NameIsFree(*name); !free.ok()) return ReplyError(responder, free);
  if (absl::Status renamed =
          runtime.AnnotateContainer(found->container.id, {{kNameAnnotation, *name}});
      !renamed.ok()) {
    return ReplyError(responder, renamed);
  }
  runtime.journal().Publish("container", "rename", found->container.id,
                            {{"name", *name}, {"oldName", "/" + found->name}});
  logger.Info("docker: container ", found->name, " renamed to ", *name);
  responder.Empty(204);
}

void Api::Impl::ListContainers(const Request& request, Responder& responder) {
  bool all = request.QueryFlag("all");
  nlohmann::json filters = nlohmann::json::parse(request.Query("filters", "{}"), nullptr, false);
  if (!filters.is_object()) return responder.Error(400, "filters is not a JSON object");
  // Docker sends {"name": {"web": true}}; older clients {"name": ["web"]}.
  auto values_of = [&](const std::string& key) {
    std::vector<std::string> values;
    auto found = filters.find(key);
    if (found == filters.end()) return values;
    if (found->is_object()) {
      for (const auto& [value, on] : found->items()) values.push_back(value);
    } else if (found->is_array()) {
      for (const nlohmann::json& value : *found) {
        if (value.is_string()) values.push_back(value.get<std::string>());
      }
    }
    return values;
  };
  for (const auto& [key, value] : filters.items()) {
    if (key != "name" && key != "id" && key != "status" && key != "label") {
      return responder.Error(400, absl::StrCat("invalid filter '", key,
                                               "' (kapal filters by name, id, status, label)"));
    }
  }
  std::vector<std::string> names = values_of("name"), ids = values_of("id"),
                           statuses = values_of("status"), labels = values_of("label");
  nlohmann::json list = nlohmann::json::array();
  int limit = std::atoi(request.Query("limit", "-1").c_str());
  for (const DockerContainer& found : Containers()) {
    std::string state = StateName(found.container.state);
    if (!all && statuses.empty() && state != "running") continue;
    auto any = [](const std::vector<std::string>& wanted, auto&& matches) {
      if (wanted.empty()) return true;
      for (const std::string& value : wanted) {
        if (matches(value)) return true;
      }
      return false;
    };
    if (!any(names, [&](const std::string& v) { return absl::StrContains(found.name, v); }))
      continue;
    if (!any(ids, [&](const std::string& v) { return absl::StartsWith(found.container.id, v); })) {
      continue;
    }
    if (!any(statuses, [&](const std::string& v) { return v == state; })) continue;
    bool labelled = true;
    for (const std::string& label : labels) {
      std::pair<std::string, std::string> kv = absl::StrSplit(label, absl::MaxSplits('=', 1));
      auto have = found.container.config.labels().find(kv.first);
      if (have == found.container.config.labels().end() ||
          (label.find('=') != std::string::npos && have->second != kv.second)) {
        labelled = false;
      }
    }
    if (!labelled) continue;
    list.push_back(ContainerSummary(found));
    if (limit > 0 && static_cast<int>(list.size()) >= limit) break;
  }
  responder.Json(200, list);
}

void Api::Impl::InspectContainer(const std::string& ref, Responder& responder) {
  absl::StatusOr<DockerContainer> found = FindContainer(ref);
  if (!found.ok()) return ReplyError(responder, found.status());
  responder.Json(200, ContainerInspect(*found));
}

void Api::Impl::StartContainer(const std::string& ref, Responder& responder) {
  absl::StatusOr<DockerContainer> found = FindContainer(ref);
  if (!found.ok()) return ReplyError(responder, found.status());
  const runtime::Container& c = found->container;
  if (c.state == runtime::v1::CONTAINER_RUNNING) return responder.Empty(304);
  if (absl::Status marked = MarkStoppedByUser(c.id, false); !marked.ok()) {
    return ReplyError(responder, marked);
  }
  if (c.state == runtime::v1::CONTAINER_EXITED) {
    if (absl::Status again = runtime.RecreateContainer(c.id); !again.ok()) {
      return ReplyError(responder, again);
    }
  }
  if (absl::Status started = runtime.StartContainer(c.id); !started.ok()) {
    return ReplyError(responder, started);
  }
  responder.Empty(204);
}

void Api::Impl::StopContainer(const std::string& ref, const Request& request,
                              Responder& responder) {
  absl::StatusOr<DockerContainer> found = FindContainer(ref);
  if (!found.ok()) return ReplyError(responder, found.status());
  // Also for an exited one: a restart it waits for is called off.
  if (absl::Status marked = MarkStoppedByUser(found->container.id, true); !marked.ok()) {
    return ReplyError(responder, marked);
  }
  if (found->container.state != runtime::v1::CONTAINER_RUNNING) return responder.Empty(304);
  int timeout = std::atoi(request.Query("t", "10").c_str());
  if (timeout < 0) timeout = 0;
  if (absl::Status stopped =
          runtime.StopContainer(found->container.id, std::chrono::seconds(timeout));
      !stopped.ok()) {
    return ReplyError(responder, stopped);
  }
  responder.Empty(204);
}

void Api::Impl::KillContainer(const std::string& ref, const Request& request,
                              Responder& responder) {
  absl::StatusOr<DockerContainer> found = FindContainer(ref);
  if (!found.ok()) return ReplyError(responder, found.status());
  std::string signal_text = request.Query("signal", "SIGKILL");
  int signal = runtime::ParseSignal(signal_text);
  if (signal <= 0) return responder.Error(400, absl::StrCat("invalid signal: ", signal_text));
  if (found->container.state != runtime::v1::CONTAINER_RUNNING) {
    return responder.Error(409, absl::StrCat("Container ", found->container.id, " is not running"));
  }
  if (absl::Status marked = MarkStoppedByUser(found->container.id, true); !marked.ok()) {
    return ReplyError(responder, marked);
  }
  if (absl::Status sent = runtime.SignalContainer(found->container.id, signal); !sent.ok()) {
    return ReplyError(responder, sent);
  }
  responder.Empty(204);
}

void Api::Impl::RestartContainer(const std::string& ref, const Request& request,
                                 Responder& responder) {
  absl::StatusOr<DockerContainer> found = FindContainer(ref);
  if (!found.ok()) return ReplyError(responder, found.status());
  int timeout = std::atoi(request.Query("t", "10").c_str());
  const std::string& id = found->container.id;
  // Stopped by hand (no policy restart in between), then started by hand.
  if (absl::Status marked = MarkStoppedByUser(id, true); !marked.ok()) {
    return ReplyError(responder, marked);
  }
  if (absl::Status stopped = runtime.StopContainer(id, std::chrono::seconds(std::max(timeout, 0)));
      !stopped.ok()) {
    return ReplyError(responder, stopped);
  }
  if (absl::Status marked = MarkStoppedByUser(id, false); !marked.ok()) {
    return ReplyError(responder, marked);
  }
  absl::StatusOr<runtime::Container> now = runtime.GetContainer(id);
  if (!now.ok()) return ReplyError(responder, now.status());
  if (now->state == runtime::v1::CONTAINER_EXITED) {
    if (absl::Status again = runtime.RecreateContainer(id); !again.ok()) {
      return ReplyError(responder, again);
    }
  }
  if (absl::Status started = runtime.StartContainer(id); !started.ok()) {
    return ReplyError(responder, started);
  }
  responder.Empty(204);
}

void Api::Impl::WaitContainer(const std::string& ref, const Request& request,
                              Responder& responder) {
  std::string condition = request.Query("condition");
  if (condition.empty()) condition = "not-running";  // `docker wait` sends it empty
  if (condition != "not-running" && condition != "next-exit" && condition != "removed") {
    return responder.Error(400, absl::StrCat("invalid condition: \"", condition,
                                             "\" (not-running, next-exit or removed)"));
  }
  absl::StatusOr<DockerContainer> found = FindContainer(ref);
  if (!found.ok()) return ReplyError(responder, found.status());
  std::string id = found->container.id;
  // For next-exit, an exit already recorded does not count: only one after this request.
  int64_t finished_before =
      found->container.state == runtime::v1::CONTAINER_EXITED ? found->container.finished_at : -1;
  // The CLI sends wait before start and goes on once the answer's head arrives.
  if (!responder.StartStream(200, "application/json")) return;
  bool auto_remove =
      found->create.value("HostConfig", nlohmann::json::object()).value("AutoRemove", false);
  std::optional<int> exit_code, last_exit;
  int removal_looks = 0;
  while (!responder.ClientGone()) {
    absl::StatusOr<runtime::Container> ended = runtime.WaitForExit(id, kWaitSlice);
    if (absl::IsDeadlineExceeded(ended.status())) continue;
    if (absl::IsNotFound(ended.status())) {
      std::lock_guard lock(mutex);
      auto removed = removed_exit_codes.find(id);
      if (removed != removed_exit_codes.end()) {
        exit_code = removed->second;
      } else if (auto_remove && ++removal_looks < 250) {
        // The --rm watcher is still removing the pod; it notes the exit code when done (5 s at
        // most: a `docker rm -f` got there first, and the watcher notes nothing).
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      } else {
        exit_code = last_exit.value_or(0);  // removed by `docker rm`
      }
      break;
    }
    if (!ended.ok()) break;
    last_exit = ended->exit_code;
    if (condition == "removed") {
      // Exited, not yet removed: look again shortly (no notification comes for the pod).
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      continue;
    }
    if (condition == "next-exit" && ended->finished_at == finished_before) {
      // Not run again yet: wait for a state change, briefly.
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      continue;
    }
    exit_code = ended->exit_code;
    break;
  }
  if (!exit_code.has_value()) return;  // the client or the server went away
  responder.WriteChunk(nlohmann::json({{"StatusCode", *exit_code}, {"Error", nullptr}}).dump() +
                       "\n");
  responder.EndStream();
}

void Api::Impl::AttachContainer(const std::string& ref, const Request& request,
                                Responder& responder) {
  absl::StatusOr<DockerContainer> found = FindContainer(ref);
  if (!found.ok()) return ReplyError(responder, found.status());
  const runtime::Container& c = found->container;
  if (c.state == runtime::v1::CONTAINER_EXITED) {
    return responder.Error(409, "You cannot attach to a stopped container, start it first");
  }
  bool want_stdin = request.QueryFlag("stdin"), want_stdout = request.QueryFlag("stdout"),
       want_stderr = request.QueryFlag("stderr");
  absl::StatusOr<runtime::AttachedContainer> attached = runtime.Attach(c.id, /*before_start=*/true);
  if (!attached.ok()) return ReplyError(responder, attached.status());
  if (!want_stdin) attached->stdin = false;
  bool tty = c.config.tty();
  int fd = responder.Hijack(request, tty ? "application/vnd.docker.raw-stream"
                                         : "application/vnd.docker.multiplexed-stream");
  HijackedTransport transport(fd, /*multiplexed=*/!tty, want_stdout, want_stderr);
  streaming::RunAttachSession(transport, *attached, [&](uint16_t columns, uint16_t rows) {
    (void)runtime.ResizeContainerTerminal(c.id, columns, rows);
  });
  ::shutdown(fd, SHUT_WR);
}

void Api::Impl::ResizeContainer(const std::string& ref, const Request& request,
                                Responder& responder) {
  absl::StatusOr<DockerContainer> found = FindContainer(ref);
  if (!found.ok()) return ReplyError(responder, found.status());
  int height = std::atoi(request.Query("h", "0").c_str());
  int width = std::atoi(request.Query("w", "0").c_str());
  if (height <= 0 || width <= 0 || height > 65535 || width > 65535) {
    return responder.Error(400, "resize needs h and w between 1 and 65535");
  }
  absl::Status resized = runtime.ResizeContainerTerminal(
      found->container.id, static_cast<uint16_t>(width), static_cast<uint16_t>(height));
  if (!resized.ok()) return ReplyError(responder, resized);
  responder.Text(200, "text/plain; charset=utf-8", "");
}

void Api::Impl::ContainerLogs(const std::string& ref, const Request& request,
                              Responder& responder) {
  absl::StatusOr<DockerContainer> found = FindContainer(ref);
  if (!found.ok()) return ReplyError(responder, found.status());
  bool want_stdout = request.QueryFlag("stdout"), want_stderr = request.QueryFlag("stderr");
  if (!want_stdout && !want_stderr) {
    return responder.Error(400, "You must choose at least one stream");
  }
  bool follow = request.QueryFlag("follow"), timestamps = request.QueryFlag("timestamps");
  int64_t since = TimeParameter(request.Query("since")),
          until = TimeParameter(request.Query("until"));
  std::string tail_text = request.Query("tail", "all");
  int64_t tail = -1;
  if (tail_text != "all" && !absl::SimpleAtoi(tail_text, &tail)) tail = -1;
  bool tty = found->container.config.tty();
  std::string id = found->container.id;
  std::string path = found->container.log_path;

  auto render = [&](const LogEntry& entry) -> std::string {
    if ((entry.is_stderr && !want_stderr) || (!entry.is_stderr && !want_stdout)) return "";
    if (since > 0 && entry.time_nanos < since) return "";
    if (until > 0 && entry.time_nanos > until) return "";
    std::string text = timestamps ? entry.time_text + " " + entry.text : entry.text;
    return tty ? text : MultiplexedFrame(entry.is_stderr, text);
  };
  if (!responder.StartStream(200, tty ? "application/vnd.docker.raw-stream"
                                      : "application/vnd.docker.multiplexed-stream")) {
    return;
  }
  // What is complete now; a line still being written is read again when it is.
  absl::StatusOr<std::string> content = base::ReadFile(path);
  std::string text = content.ok() ? *content : "";
  size_t complete = text.rfind('\n');
  complete = complete == std::string::npos ? 0 : complete + 1;
  int64_t consumed = static_cast<int64_t>(complete);
  std::vector<LogEntry> first;
  for (absl::string_view line :
       absl::StrSplit(absl::string_view(text).substr(0, complete), '\n', absl::SkipEmpty())) {
    if (std::optional<LogEntry> entry = ParseLogLine(line)) first.push_back(std::move(*entry));
  }
  size_t begin = tail >= 0 && static_cast<size_t>(tail) < first.size() ? first.size() - tail : 0;
  std::string out;
  for (size_t i = begin; i < first.size(); ++i) out += render(first[i]);
  if (!responder.WriteChunk(out)) return;
  if (follow) {
    runtime::LogTail follower(path, consumed);
    // Until the container has ended and its log holds nothing more, or the client goes.
    while (!responder.ClientGone()) {
      std::vector<std::string> lines = follower.NewLines();
      std::string chunk;
      for (const std::string& line : lines) {
        if (std::optional<LogEntry> entry = ParseLogLine(line)) chunk += render(*entry);
      }
      if (!chunk.empty() && !responder.WriteChunk(chunk)) return;
      if (lines.empty()) {
        absl::StatusOr<runtime::Container> now = runtime.GetContainer(id);
        if (!now.ok() || now->state == runtime::v1::CONTAINER_EXITED) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  }
  responder.EndStream();
}

void Api::Impl::ContainerStats(const std::string& ref, const Request& request,
                               Responder& responder) {
  absl::StatusOr<DockerContainer> found = FindContainer(ref);
  if (!found.ok()) return ReplyError(responder, found.status());
  bool stream = request.QueryFlag("stream", true);
  bool one_shot = request.QueryFlag("one-shot");
  std::string id = found->container.id;
  std::string pod_id = found->container.pod_id;
  int64_t limit = found->container.config.linux().resources().memory_limit_in_bytes();
  if (limit <= 0) {
    long pages = ::sysconf(_SC_PHYS_PAGES), page_size = ::sysconf(_SC_PAGESIZE);
    limit = static_cast<int64_t>(pages) * page_size;
  }
  long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  struct Sample {
    std::string read;
    uint64_t cpu = 0;
    uint64_t system = 0;
    uint64_t memory = 0;
    nlohmann::json networks = nlohmann::json::object();
    runtime::CgroupSample cgroup;
  };
  auto sample = [&]() -> Sample {
    Sample s;
    s.read = DockerTime(runtime::NowNanos());
    s.system = SystemCpuNanos();
    absl::StatusOr<runtime::v1::ContainerStats> stats = runtime.ContainerStats(id);
    if (stats.ok()) {
      s.cpu = stats->cpu().usage_core_nano_seconds().value();
      s.memory = stats->memory().working_set_bytes().value();
    }
    if (absl::StatusOr<runtime::CgroupSample> cgroup = runtime.ContainerCgroupSample(id);
        cgroup.ok()) {
      s.cgroup = *cgroup;
    }
    absl::StatusOr<runtime::v1::PodSandboxStats> pod = runtime.PodSandboxStats(pod_id);
    if (pod.ok() && pod->linux().network().has_default_interface()) {
      const auto& nic = pod->linux().network().default_interface();
      s.networks[nic.name().empty() ? "eth0" : nic.name()] = {
          {"rx_bytes", nic.rx_bytes().value()},
          {"rx_errors", nic.rx_errors().value()},
          {"tx_bytes", nic.tx_bytes().value()},
          {"tx_errors", nic.tx_errors().value()},
          {"rx_packets", 0},
          {"tx_packets", 0},
          {"rx_dropped", 0},
          {"tx_dropped", 0}};
    }
    return s;
  };
  auto cpu_json = [&](const Sample& s) {
    return nlohmann::json{
        {"cpu_usage",
         {{"total_usage", s.cpu}, {"usage_in_kernelmode", 0}, {"usage_in_usermode", 0}}},
        {"system_cpu_usage", s.system},
        {"online_cpus", cpus},
        {"throttling_data", {{"periods", 0}, {"throttled_periods", 0}, {"throttled_time", 0}}}};
  };
  auto render = [&](const Sample& now, const Sample& before) {
    return nlohmann::json{
               {"read", now.read},
               {"preread", before.read.empty() ? DockerTime(0) : before.read},
               {"pids_stats", PidsJson(now.cgroup)},
               {"blkio_stats", BlkioJson(now.cgroup)},
               {"num_procs", 0},
               {"storage_stats", nlohmann::json::object()},
               {"cpu_stats", cpu_json(now)},
               {"precpu_stats", cpu_json(before)},
               {"memory_stats",
                {{"usage", now.memory}, {"limit", limit}, {"stats", nlohmann::json::object()}}},
               {"name", "/" + found->name},
               {"id", id},
               {"networks", now.networks}}
               .dump() +
           "\n";
  };
  if (!responder.StartStream(200, "application/json")) return;
  Sample before;
  if (!stream && !one_shot) {
    // Two samples a second apart, so the CLI can tell the CPU share.
    before = sample();
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
  Sample now = sample();
  if (!responder.WriteChunk(render(now, before))) return;
  while (stream) {
    for (int i = 0; i < 10 && !responder.ClientGone(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (responder.ClientGone()) return;
    absl::StatusOr<runtime::Container> alive = runtime.GetContainer(id);
    if (!alive.ok()) break;
    before = now;
    now = sample();
    if (!responder.WriteChunk(render(now, before))) return;
  }
  responder.EndStream();
}

void Api::Impl::RemoveContainer(const std::string& ref, const Request& request,
                                Responder& responder) {
  absl::StatusOr<DockerContainer> found = FindContainer(ref);
  if (!found.ok()) return ReplyError(responder, found.status());
  if (found->container.state == runtime::v1::CONTAINER_RUNNING && !request.QueryFlag("force")) {
    return responder.Error(
        409, absl::StrCat("You cannot remove a running container ", found->container.id,
                          ". Stop the container before attempting removal or force remove"));
  }
  if (absl::Status removed = RemoveContainerAndPod(*found); !removed.ok()) {
    return ReplyError(responder, removed);
  }
  std::lock_guard lock(mutex);
  for (auto it = execs.begin(); it != execs.end();) {
    it = it->second.container_id == found->container.id && !it->second.running ? execs.erase(it)
                                                                               : std::next(it);
  }
  responder.Empty(204);
}

void Api::Impl::PauseContainer(const std::string& ref, bool pause, Responder& responder) {
  absl::StatusOr<DockerContainer> found = FindContainer(ref);
  if (!found.ok()) return ReplyError(responder, found.status());
  absl::Status done = pause ? runtime.PauseContainer(found->container.id)
                            : runtime.ResumeContainer(found->container.id);
  if (!done.ok()) return ReplyError(responder, done);
  responder.Empty(204);
}

void Api::Impl::TopContainer(const std::string& ref, const Request& request, Responder& responder) {
  absl::StatusOr<DockerContainer> found = FindContainer(ref);
  if (!found.ok()) return ReplyError(responder, found.status());
  absl::StatusOr<std::vector<int>> pids = runtime.ContainerProcesses(found->container.id);
  if (!pids.ok()) return ReplyError(responder, pids.status());
  // As dockerd does: the host's ps with the client's arguments, its rows for these pids.
  std::vector<std::string> argv = {"ps"};
  for (absl::string_view word :
       absl::StrSplit(request.Query("ps_args", "-ef"), ' ', absl::SkipEmpty())) {
    argv.emplace_back(word);
  }
  absl::StatusOr<base::CommandResult> ran = base::RunCommand(argv, "", std::chrono::seconds(10));
  if (!ran.ok()) return ReplyError(responder, ran.status());
  if (!ran->Succeeded()) {
    return responder.Error(500, absl::StrCat("ps: ", ran->Describe()));
  }
  std::vector<std::string> lines = absl::StrSplit(ran->output, '\n', absl::SkipEmpty());
  if (lines.empty()) return responder.Error(500, "ps printed nothing");
  std::vector<std::string> titles = absl::StrSplit(lines[0], ' ', absl::SkipEmpty());
  auto pid_column = std::find(titles.begin(), titles.end(), "PID");
  if (pid_column == titles.end()) {
    return responder.Error(500, "Couldn't find PID field in ps output");
  }
  size_t pid_index = static_cast<size_t>(pid_column - titles.begin());
  std::set<int> wanted(pids->begin(), pids->end());
  nlohmann::json processes = nlohmann::json::array();
  for (size_t i = 1; i < lines.size(); ++i) {
    // The last column (the command) may hold spaces.
    std::vector<std::string> fields;
    absl::string_view rest = lines[i];
    for (size_t column = 0; column + 1 < titles.size(); ++column) {
      rest = absl::StripLeadingAsciiWhitespace(rest);
      size_t space = rest.find(' ');
      fields.emplace_back(rest.substr(0, space));
      rest = space == absl::string_view::npos ? "" : rest.substr(space);
    }
    fields.emplace_back(absl::StripAsciiWhitespace(rest));
    int pid = 0;
    if (pid_index < fields.size() && absl::SimpleAtoi(fields[pid_index], &pid) &&
        wanted.count(pid) != 0) {
      processes.push_back(fields);
    }
  }
  responder.Json(200, {{"Titles", titles}, {"Processes", processes}});
}

}  // namespace kapal::docker
