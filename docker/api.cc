#include "docker/api.h"

#include <sys/utsname.h>
#include <unistd.h>

#include <fstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "base/build_info.h"
#include "docker/api_impl.h"
#include "docker/translate.h"
#include "images/reference.h"
#include "metrics/metrics.h"

namespace kapal::docker {

namespace {

// How long one wait on the core lasts before the handler looks at its client and the server.
constexpr auto kWaitSlice = std::chrono::milliseconds(500);

std::string KernelRelease() {
  utsname names{};
  ::uname(&names);
  return names.release;
}

std::string OperatingSystem() {
  std::ifstream release("/etc/os-release");
  std::string line;
  while (std::getline(release, line)) {
    if (absl::StartsWith(line, "PRETTY_NAME=")) {
      std::string value = line.substr(12);
      if (value.size() >= 2 && value.front() == '"') value = value.substr(1, value.size() - 2);
      return value;
    }
  }
  return "Linux";
}

int64_t MemoryTotal() {
  long pages = ::sysconf(_SC_PHYS_PAGES), page_size = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && page_size > 0 ? static_cast<int64_t>(pages) * page_size : 0;
}

}  // namespace

int HttpCodeOf(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kUnimplemented:
      return 501;
    case absl::StatusCode::kUnavailable:
      return 503;
    default:
      return 500;
  }
}

void ReplyError(Responder& responder, const absl::Status& status) {
  responder.Error(HttpCodeOf(status), std::string(status.message()));
}

std::string DockerTime(int64_t unix_nanos) {
  if (unix_nanos == 0) return "0001-01-01T00:00:00Z";
  return absl::FormatTime(absl::RFC3339_full, absl::FromUnixNanos(unix_nanos), absl::UTCTimeZone());
}

std::string HumanDuration(int64_t seconds) {
  if (seconds < 1) return "Less than a second";
  if (seconds == 1) return "1 second";
  if (seconds < 60) return absl::StrCat(seconds, " seconds");
  int64_t minutes = seconds / 60;
  if (minutes == 1) return "About a minute";
  if (minutes < 60) return absl::StrCat(minutes, " minutes");
  int64_t hours = (seconds + 1800) / 3600;
  if (hours == 1) return "About an hour";
  if (hours < 48) return absl::StrCat(hours, " hours");
  if (hours < 24 * 7 * 2) return absl::StrCat(hours / 24, " days");
  if (hours < 24 * 30 * 2) return absl::StrCat(hours / 24 / 7, " weeks");
  if (hours < 24 * 365 * 2) return absl::StrCat(hours / 24 / 30, " months");
  return absl::StrCat(hours / 24 / 365, " years");
}

std::string FamiliarReference(const std::string& reference) {
  for (const char* prefix : {"docker.io/library/", "docker.io/"}) {
    if (absl::StartsWith(reference, prefix)) return reference.substr(std::strlen(prefix));
  }
  return reference;
}

nlohmann::json ImageConfigOf(const std::string& config_json) {
  nlohmann::json document = nlohmann::json::parse(config_json, nullptr, false);
  if (!document.is_object()) return nlohmann::json::object();
  auto found = document.find("config");
  return found != document.end() && found->is_object() ? *found : nlohmann::json::object();
}

absl::StatusOr<std::unique_ptr<Api>> Api::Start(const ApiOptions& options,
                                                runtime::Runtime& runtime,
                                                builder::Builder& builder, base::Logger& logger) {
  auto impl = std::make_unique<Impl>(options, runtime, builder, logger);
  // --rm containers that ended while kapald was down go now; running ones are watched.
  for (const DockerContainer& found : impl->Containers()) {
    if (found.create.value("HostConfig", nlohmann::json::object()).value("AutoRemove", false)) {
      impl->WatchForRemoval(found.container.id);
    }
  }
  ServerOptions server_options;
  server_options.socket_path = options.socket_path;
  server_options.group = options.group;
  server_options.spool_dir = options.scratch_dir;
  server_options.spool_body = [](const streaming::HttpRequest& request) {
    if (request.method == "PUT") return absl::EndsWith(request.path, "/archive");  // docker cp
    return request.method == "POST" && (absl::EndsWith(request.path, "/build") ||
                                        absl::EndsWith(request.path, "/images/load") ||
                                        // docker import
                                        (absl::EndsWith(request.path, "/images/create") &&
                                         absl::StrContains(request.query, "fromSrc=")));
  };
  if (!options.tcp_address.empty()) {
    absl::StatusOr<metrics::HostPort> where = metrics::ParseHostPort(options.tcp_address);
    if (!where.ok()) return where.status();
    server_options.tcp_host = where->host;
    server_options.tcp_port = where->port;
    if (!options.tls_ca.empty()) {
      absl::StatusOr<std::unique_ptr<streaming::TlsContext>> tls = streaming::TlsContext::ForServer(
          options.tls_cert, options.tls_key, where->host, options.tls_ca);
      if (!tls.ok()) return tls.status();
      server_options.tls = std::move(*tls);
    } else {
      bool loopback = metrics::IsLoopbackHost(where->host);
      if (!options.allow_plain_tcp || !loopback) {
        return absl::InvalidArgumentError(
            "the Docker API on TCP needs mutual TLS (plain TCP only when allowed, on loopback)");
      }
    }
  }
  Impl* raw = impl.get();
  absl::StatusOr<std::unique_ptr<HttpServer>> server = HttpServer::Start(
      server_options,
      [raw](const Request& request, Responder& responder) { raw->Route(request, responder); },
      logger);
  if (!server.ok()) {
    impl->stopping = true;
    impl->removers.JoinAll();
    return server.status();
  }
  impl->server = std::move(*server);
  impl->StartSupervisor();
  return std::unique_ptr<Api>(new Api(std::move(impl)));
}

Api::Api(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

int Api::TcpPort() const { return impl_->server->TcpPort(); }

Api::~Api() {
  impl_->stopping = true;
  impl_->server.reset();
  impl_->removers.Stop();
  impl_->removers.JoinAll();
  if (impl_->supervisor.joinable()) impl_->supervisor.join();
  impl_->health_checks.Stop();
  impl_->health_checks.JoinAll();
}

void Api::Impl::Route(const Request& request, Responder& responder) {
  std::string path = request.path;
  // /v1.41/containers/json and /containers/json alike.
  if (absl::StartsWith(path, "/v1.")) {
    size_t slash = path.find('/', 1);
    path = slash == std::string::npos ? "/" : path.substr(slash);
  }
  const std::string& method = request.method;
  logger.Debug("docker api: ", method, " ", path);
  std::vector<std::string> parts = absl::StrSplit(path.substr(1), '/');
  auto is = [&](const char* m) { return method == m; };

  if (path == "/_ping") return Ping(request, responder);
  if (path == "/version" && is("GET")) return Version(responder);
  if (path == "/info" && is("GET")) return Info(responder);
  if (path == "/build" && is("POST")) return BuildImage(request, responder);
  if (path == "/commit" && is("POST")) return CommitContainer(request, responder);
  if (path == "/system/df" && is("GET")) return SystemDf(responder);
  if (path == "/events" && is("GET")) return Events(request, responder);
  if (path == "/build/prune" && is("POST")) return PruneBuildCache(responder);
  if (path == "/containers/prune" && is("POST")) return PruneContainers(responder);
  if (path == "/images/prune" && is("POST")) return PruneImages(request, responder);
  if (path == "/networks/prune" && is("POST")) return PruneNetworks(responder);

  if (parts[0] == "images" && parts.size() >= 2) {
    std::string rest = path.substr(std::strlen("/images/"));
    if (rest == "json" && is("GET")) return ListImages(request, responder);
    if (rest == "create" && is("POST")) {
      if (!request.Query("fromSrc").empty()) return ImportImage(request, responder);
      return PullImage(request, responder);
    }
    if (rest == "get" && is("GET")) return SaveImages(request.QueryValues("names"), responder);
    if (rest == "load" && is("POST")) return LoadImages(request, responder);
    // Names hold slashes (127.0.0.1:5000/app): the action is the last part.
    auto name_before = [&](const std::string& suffix) {
      return rest.substr(0, rest.size() - suffix.size());
    };
    if (absl::EndsWith(rest, "/json") && is("GET"))
      return InspectImage(name_before("/json"), responder);
    if (absl::EndsWith(rest, "/tag") && is("POST")) {
      return TagImage(name_before("/tag"), request, responder);
    }
    if (absl::EndsWith(rest, "/push") && is("POST")) {
      return PushImage(name_before("/push"), request, responder);
    }
    if (absl::EndsWith(rest, "/get") && is("GET"))
      return SaveImages({name_before("/get")}, responder);
    if (absl::EndsWith(rest, "/history") && is("GET")) {
      return ImageHistory(name_before("/history"), responder);
    }
    if (is("DELETE")) return RemoveImage(rest, request, responder);
  }

  if (parts[0] == "containers" && parts.size() >= 2) {
    if (parts.size() == 2 && parts[1] == "create" && is("POST")) {
      return CreateContainer(request, responder);
    }
    if (parts.size() == 2 && parts[1] == "json" && is("GET")) {
      return ListContainers(request, responder);
    }
    const std::string& ref = parts[1];
    if (parts.size() == 2 && is("DELETE")) return RemoveContainer(ref, request, responder);
    if (parts.size() == 3) {
      const std::string& action = parts[2];
      if (action == "json" && is("GET")) return InspectContainer(ref, responder);
      if (action == "start" && is("POST")) return StartContainer(ref, responder);
      if (action == "stop" && is("POST")) return StopContainer(ref, request, responder);
      if (action == "kill" && is("POST")) return KillContainer(ref, request, responder);
      if (action == "restart" && is("POST")) return RestartContainer(ref, request, responder);
      if (action == "wait" && is("POST")) return WaitContainer(ref, request, responder);
      if (action == "attach" && is("POST")) return AttachContainer(ref, request, responder);
      if (action == "resize" && is("POST")) return ResizeContainer(ref, request, responder);
      if (action == "logs" && is("GET")) return ContainerLogs(ref, request, responder);
      if (action == "stats" && is("GET")) return ContainerStats(ref, request, responder);
      if (action == "exec" && is("POST")) return CreateExec(ref, request, responder);
      if (action == "pause" && is("POST")) return PauseContainer(ref, true, responder);
      if (action == "unpause" && is("POST")) return PauseContainer(ref, false, responder);
      if (action == "top" && is("GET")) return TopContainer(ref, request, responder);
      if (action == "archive" && (is("GET") || is("HEAD") || is("PUT"))) {
        return ContainerArchive(ref, request, responder);
      }
      if (action == "export" && is("GET")) return ExportContainer(ref, responder);
      if (action == "rename" && is("POST")) return RenameContainer(ref, request, responder);
    }
  }

  if (parts[0] == "exec" && parts.size() == 3) {
    if (parts[2] == "start" && is("POST")) return StartExec(parts[1], request, responder);
    if (parts[2] == "resize" && is("POST")) return ResizeExec(parts[1], request, responder);
    if (parts[2] == "json" && is("GET")) return InspectExec(parts[1], responder);
  }

  if (parts[0] == "volumes") {
    if (parts.size() == 1 && is("GET")) return ListVolumes(responder);
    if (parts.size() == 2 && parts[1] == "create" && is("POST")) {
      return CreateVolume(request, responder);
    }
    if (parts.size() == 2 && parts[1] == "prune" && is("POST")) return PruneVolumes(responder);
    if (parts.size() == 2 && is("GET")) return InspectVolume(parts[1], responder);
    if (parts.size() == 2 && is("DELETE")) return RemoveVolume(parts[1], request, responder);
  }

  if (parts[0] == "networks") {
    if (parts.size() == 1 && is("GET")) return ListNetworks(responder);
    if (parts.size() == 2 && parts[1] == "create" && is("POST")) {
      return CreateNetwork(request, responder);
    }
    if (parts.size() == 2 && is("GET")) return InspectNetwork(parts[1], responder);
    if (parts.size() == 2 && is("DELETE")) return RemoveNetwork(parts[1], responder);
  }

  responder.Error(501, absl::StrCat("kapal's Docker API does not implement ", method, " ", path,
                                    " (yet); see README's Docker section for what it serves"));
}

void Api::Impl::Ping(const Request& request, Responder& responder) {
  if (request.method == "HEAD") {
    responder.Text(200, "text/plain; charset=utf-8", "");
    return;
  }
  responder.Text(200, "text/plain; charset=utf-8", "OK");
}

void Api::Impl::Version(Responder& responder) {
  nlohmann::json engine = {{"Name", "Engine"},
                           {"Version", base::kVersion},
                           {"Details",
                            {{"ApiVersion", "1.41"},
                             {"GitCommit", base::kGitCommit},
                             {"KernelVersion", KernelRelease()},
                             {"Os", "linux"},
                             {"Arch", "amd64"},
                             {"MinAPIVersion", "1.24"}}}};
  responder.Json(200, {{"Platform", {{"Name", "kapal"}}},
                       {"Components", nlohmann::json::array({engine})},
                       {"Version", base::kVersion},
                       {"ApiVersion", "1.41"},
                       {"MinAPIVersion", "1.24"},
                       {"GitCommit", base::kGitCommit},
                       {"GoVersion", "none (C++20)"},
                       {"Os", "linux"},
                       {"Arch", "amd64"},
                       {"KernelVersion", KernelRelease()},
                       {"BuildTime", ""}});
}

void Api::Impl::Info(Responder& responder) {
  std::vector<DockerContainer> all = Containers();
  int running = 0, stopped = 0;
  for (const DockerContainer& found : all) {
    if (found.container.state == runtime::v1::CONTAINER_RUNNING) {
      ++running;
    } else {
      ++stopped;
    }
  }
  char hostname[256] = {};
  ::gethostname(hostname, sizeof hostname - 1);
  const runtime::HostFacts& host = runtime.host();
  bool v2 = host.cgroup_layout == runtime::CgroupLayout::kV2;
  nlohmann::json runtimes = nlohmann::json::object();
  for (const std::string& handler : runtime.HandlerNames()) {
    if (!handler.empty()) runtimes[handler] = {{"path", handler}};
  }
  responder.Json(200,
                 {{"ID", ""},
                  {"Containers", all.size()},
                  {"ContainersRunning", running},
                  {"ContainersPaused", 0},
                  {"ContainersStopped", stopped},
                  {"Images", runtime.images().List().size()},
                  {"Driver", options.storage_driver},
                  {"DriverStatus", nlohmann::json::array()},
                  {"Plugins",
                   {{"Volume", {"local"}},
                    {"Network", {"bridge", "host", "none"}},
                    {"Authorization", nullptr},
                    {"Log", {"cri"}}}},
                  {"MemoryLimit", true},
                  {"SwapLimit", false},
                  {"KernelMemory", false},
                  {"CpuCfsPeriod", true},
                  {"CpuCfsQuota", true},
                  {"CPUShares", true},
                  {"CPUSet", true},
                  {"PidsLimit", v2},
                  {"IPv4Forwarding", host.ip_forward},
                  {"BridgeNfIptables", false},
                  {"BridgeNfIp6tables", false},
                  {"Debug", false},
                  {"NFd", 0},
                  {"OomKillDisable", false},
                  {"NGoroutines", 0},
                  {"SystemTime", DockerTime(runtime::NowNanos())},
                  {"LoggingDriver", "cri"},
                  {"CgroupDriver", std::string(runtime::CgroupDriverName(runtime.cgroup_driver()))},
                  {"CgroupVersion", v2 ? "2" : "1"},
                  {"NEventsListener", 0},
                  {"KernelVersion", KernelRelease()},
                  {"OperatingSystem", OperatingSystem()},
                  {"OSVersion", ""},
                  {"OSType", "linux"},
                  {"Architecture", "x86_64"},
                  {"IndexServerAddress", "https://index.docker.io/v1/"},
                  {"RegistryConfig",
                   {{"AllowNondistributableArtifactsCIDRs", nlohmann::json::array()},
                    {"AllowNondistributableArtifactsHostnames", nlohmann::json::array()},
                    {"InsecureRegistryCIDRs", nlohmann::json::array()},
                    {"IndexConfigs", nlohmann::json::object()},
                    {"Mirrors", nlohmann::json::array()}}},
                  {"NCPU", ::sysconf(_SC_NPROCESSORS_ONLN)},
                  {"MemTotal", MemoryTotal()},
                  {"GenericResources", nullptr},
                  {"DockerRootDir", options.root_dir},
                  {"HttpProxy", ""},
                  {"HttpsProxy", ""},
                  {"NoProxy", ""},
                  {"Name", hostname},
                  {"Labels", nlohmann::json::array()},
                  {"ExperimentalBuild", false},
                  {"ServerVersion", absl::StrCat(base::kVersion, " (kapal)")},
                  {"Runtimes", runtimes},
                  {"DefaultRuntime", options.default_runtime},
                  {"Swarm",
                   {{"NodeID", ""},
                    {"NodeAddr", ""},
                    {"LocalNodeState", "inactive"},
                    {"ControlAvailable", false},
                    {"Error", ""},
                    {"RemoteManagers", nullptr}}},
                  {"LiveRestoreEnabled", true},
                  {"Isolation", ""},
                  {"InitBinary", ""},
                  {"ContainerdCommit", {{"ID", ""}, {"Expected", ""}}},
                  {"RuncCommit", {{"ID", ""}, {"Expected", ""}}},
                  {"InitCommit", {{"ID", ""}, {"Expected", ""}}},
                  {"SecurityOptions", {"name=seccomp,profile=default"}},
                  {"Warnings", nlohmann::json::array()}});
}

std::vector<DockerContainer> Api::Impl::Containers() {
  std::map<std::string, runtime::Pod> pods;
  for (runtime::Pod& pod : runtime.ListPods()) pods.emplace(pod.id, std::move(pod));
  std::vector<DockerContainer> found;
  for (runtime::Container& container : runtime.ListContainers()) {
    auto name = container.config.annotations().find(kNameAnnotation);
    if (name == container.config.annotations().end()) continue;
    DockerContainer item;
    item.name = name->second;
    auto create = container.config.annotations().find(kCreateAnnotation);
    item.create = create == container.config.annotations().end()
                      ? nlohmann::json::object()
                      : nlohmann::json::parse(create->second, nullptr, false);
    if (!item.create.is_object()) item.create = nlohmann::json::object();
    auto pod = pods.find(container.pod_id);
    if (pod != pods.end()) item.pod = pod->second;
    item.container = std::move(container);
    found.push_back(std::move(item));
  }
  std::sort(found.begin(), found.end(), [](const DockerContainer& a, const DockerContainer& b) {
    return a.container.created_at > b.container.created_at;
  });
  return found;
}

absl::StatusOr<DockerContainer> Api::Impl::FindContainer(const std::string& ref) {
  std::string name = absl::StartsWith(ref, "/") ? ref.substr(1) : ref;
  if (name.empty()) return absl::InvalidArgumentError("no container named");
  std::vector<DockerContainer> all = Containers();
  // A full id, then a name, then an id prefix, as Docker looks them up.
  for (DockerContainer& found : all) {
    if (found.container.id == name) return std::move(found);
  }
  for (DockerContainer& found : all) {
    if (found.name == name) return std::move(found);
  }
  std::optional<DockerContainer> match;
  for (DockerContainer& found : all) {
    if (absl::StartsWith(found.container.id, name)) {
      if (match.has_value()) {
        return absl::InvalidArgumentError(
            absl::StrCat("multiple containers found with provided prefix: ", name));
      }
      match = std::move(found);
    }
  }
  if (!match.has_value()) return absl::NotFoundError(absl::StrCat("No such container: ", ref));
  return std::move(*match);
}

absl::Status Api::Impl::RemoveContainerAndPod(const DockerContainer& found) {
  if (absl::Status removed = runtime.RemoveContainer(found.container.id); !removed.ok()) {
    return removed;
  }
  if (absl::Status stopped = runtime.StopPod(found.container.pod_id); !stopped.ok()) {
    return stopped;
  }
  return runtime.RemovePod(found.container.pod_id);
}

void Api::Impl::WatchForRemoval(const std::string& id) {
  removers.Spawn([this, id] {
    while (!stopping) {
      absl::StatusOr<runtime::Container> ended = runtime.WaitForExit(id, kWaitSlice);
      if (absl::IsDeadlineExceeded(ended.status())) continue;
      if (!ended.ok()) return;  // removed by someone else
      absl::StatusOr<DockerContainer> found = FindContainer(id);
      if (!found.ok()) return;
      if (absl::Status removed = RemoveContainerAndPod(*found); !removed.ok()) {
        logger.Warn("docker: cannot remove --rm container ", id, ": ", removed.message());
      } else {
        logger.Info("docker: container ", found->name, " (", id, ") removed after its exit (--rm)");
      }
      // Only now, with the pod gone too: a wait on "removed" (docker run --rm) answers when
      // it sees this, so nothing of the container is left when the CLI returns.
      std::lock_guard guard(mutex);
      // Bounded: an arbitrary old entry goes.
      if (removed_exit_codes.size() > 1000) removed_exit_codes.erase(removed_exit_codes.begin());
      removed_exit_codes[id] = ended->exit_code;
      return;
    }
  });
}

}  // namespace kapal::docker
