#include "daemon/config.h"

#include <sys/un.h>

#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "base/files.h"
#include "base/logger.h"
#include "metrics/metrics.h"
#include "toml++/toml.h"

namespace kapal::daemon {

namespace {

std::string TypeName(toml::node_type type) {
  switch (type) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a number";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
    case toml::node_type::time:
    case toml::node_type::date_time:
      return "a date or time";
    case toml::node_type::none:
      break;
  }
  return "nothing";
}

// Reads the keys of one TOML table, remembering which it consumed, so that every key left over is
// reported as unknown: a misspelt key must not silently fall back to its default.
class TableReader {
 public:
  TableReader(const toml::table& table, std::string prefix, std::vector<std::string>& errors)
      : table_(table), prefix_(std::move(prefix)), errors_(errors) {}

  void String(absl::string_view key, std::string& out) {
    const toml::node* node = Take(key);
    if (node == nullptr) return;
    if (const auto* value = node->as_string()) {
      out = value->get();
    } else {
      Error(*node, key, absl::StrCat("expected a string, got ", TypeName(node->type())));
    }
  }

  void StringList(absl::string_view key, std::vector<std::string>& out) {
    const toml::node* node = Take(key);
    if (node == nullptr) return;
    const auto* array = node->as_array();
    if (array == nullptr) {
      Error(*node, key, absl::StrCat("expected an array of strings, got ", TypeName(node->type())));
      return;
    }
    std::vector<std::string> values;
    for (const toml::node& element : *array) {
      if (const auto* value = element.as_string()) {
        values.push_back(value->get());
      } else {
        Error(element, key,
              absl::StrCat("expected an array of strings, found ", TypeName(element.type())));
        return;
      }
    }
    out = std::move(values);
  }

  // A string key that names one of CHOICES; anything else is an error listing them.
  template <typename Enum, size_t N>
  void Choice(absl::string_view key, const std::pair<const char*, Enum> (&choices)[N], Enum& out) {
    const toml::node* node = table_.get(std::string_view(key.data(), key.size()));
    std::string value;
    String(key, value);
    if (node == nullptr || !node->is_string()) return;
    std::vector<std::string> names;
    for (const auto& [name, choice] : choices) {
      if (value == name) {
        out = choice;
        return;
      }
      names.push_back(absl::StrCat(name));
    }
    Error(*node, key,
          absl::StrCat("\"", value, "\" is not ",
                       absl::StrJoin(names.begin(), names.end() - 1, ", "), " or ", names.back()));
  }

  // A duration as Go and containerd write them ("5m", "1m30s", "0s"), whole seconds.
  void Duration(absl::string_view key, std::chrono::seconds& out) {
    const toml::node* node = Take(key);
    if (node == nullptr) return;
    const auto* value = node->as_string();
    absl::Duration parsed;
    if (value == nullptr || !absl::ParseDuration(value->get(), &parsed) ||
        parsed < absl::ZeroDuration()) {
      Error(*node, key, "expected a duration such as \"5m\", \"90s\" or \"0s\"");
      return;
    }
    out = std::chrono::seconds(absl::ToInt64Seconds(parsed));
  }

  void Bool(absl::string_view key, bool& out) {
    const toml::node* node = Take(key);
    if (node == nullptr) return;
    if (const auto* value = node->as_boolean()) {
      out = value->get();
    } else {
      Error(*node, key, absl::StrCat("expected true or false, got ", TypeName(node->type())));
    }
  }

  void Int(absl::string_view key, int& out) {
    const toml::node* node = Take(key);
    if (node == nullptr) return;
    if (const auto* value = node->as_integer()) {
      int64_t number = value->get();
      if (number < INT32_MIN || number > INT32_MAX) {
        Error(*node, key, "out of range");
        return;
      }
      out = static_cast<int>(number);
    } else {
      Error(*node, key, absl::StrCat("expected an integer, got ", TypeName(node->type())));
    }
  }

  const toml::table* Table(absl::string_view key) {
    const toml::node* node = Take(key);
    if (node == nullptr) return nullptr;
    if (const auto* table = node->as_table()) return table;
    Error(*node, key, absl::StrCat("expected a table, got ", TypeName(node->type())));
    return nullptr;
  }

  std::string Path(absl::string_view key) const { return absl::StrCat(prefix_, key); }

  // Reports every key of the table that no call above consumed.
  void RejectUnknownKeys() {
    for (const auto& [key, node] : table_) {
      if (!taken_.contains(std::string(key.str()))) {
        Error(node, std::string(key.str()), "unknown key");
      }
    }
  }

  void Error(const toml::node& node, absl::string_view key, absl::string_view what) {
    errors_.push_back(
        absl::StrCat("line ", node.source().begin.line, ": key '", Path(key), "': ", what));
  }

 private:
  const toml::node* Take(absl::string_view key) {
    taken_.insert(std::string(key));
    return table_.get(std::string_view(key.data(), key.size()));
  }

  const toml::table& table_;
  std::string prefix_;
  std::vector<std::string>& errors_;
  std::set<std::string> taken_;
};

// The names of each enum setting, for the parser and for rendering alike.
constexpr std::pair<const char*, CgroupDriverSetting> kCgroupDrivers[] = {
    {"auto", CgroupDriverSetting::kAuto},
    {"cgroupfs", CgroupDriverSetting::kCgroupfs},
    {"systemd", CgroupDriverSetting::kSystemd}};
constexpr std::pair<const char*, SnapshotterSetting> kSnapshotters[] = {
    {"auto", SnapshotterSetting::kAuto},
    {"overlay", SnapshotterSetting::kOverlay},
    {"native", SnapshotterSetting::kNative}};

bool ValidHandlerName(absl::string_view name) {
  if (name.empty() || name.size() > 63) return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.';
    if (!ok) return false;
  }
  return true;
}

void CheckAbsolute(absl::string_view key, const std::string& path,
                   std::vector<std::string>& errors) {
  if (path.empty() || path.front() != '/') {
    errors.push_back(absl::StrCat("key '", key, "': \"", path, "\" is not an absolute path"));
  }
}

// [docker] tcp_address: mutual TLS with all three files, or plain on loopback when allowed.
void CheckDockerTcp(const Config& config, std::vector<std::string>& errors) {
  int tls_files = !config.docker_tls_cert.empty() + !config.docker_tls_key.empty() +
                  !config.docker_tls_ca.empty();
  if (tls_files != 0 && tls_files != 3) {
    errors.push_back(
        "keys 'docker.tls_cert', 'docker.tls_key' and 'docker.tls_ca' go together (mutual TLS)");
  }
  if (config.docker_tcp_address.empty()) {
    if (tls_files != 0 || config.docker_allow_plain_tcp) {
      errors.push_back(
          "keys 'docker.tls_*' and 'docker.allow_plain_tcp' need 'docker.tcp_address'");
    }
    return;
  }
  if (config.docker_address.empty()) {
    errors.push_back("key 'docker.tcp_address' needs the Docker API on ('docker.address')");
  }
  absl::StatusOr<metrics::HostPort> where = metrics::ParseHostPort(config.docker_tcp_address);
  if (!where.ok()) {
    errors.push_back(absl::StrCat("key 'docker.tcp_address': ", where.status().message()));
    return;
  }
  if (tls_files == 3) {
    for (const std::string* file :
         {&config.docker_tls_cert, &config.docker_tls_key, &config.docker_tls_ca}) {
      CheckAbsolute("docker.tls_*", *file, errors);
    }
    return;
  }
  bool loopback = metrics::IsLoopbackHost(where->host);
  if (!config.docker_allow_plain_tcp) {
    errors.push_back(
        "key 'docker.tcp_address': the Docker API on TCP needs mutual TLS ('docker.tls_cert', "
        "'docker.tls_key', 'docker.tls_ca'): whoever reaches it runs anything as root. Plain TCP "
        "only with 'docker.allow_plain_tcp = true' on a loopback address");
  } else if (!loopback) {
    errors.push_back(
        absl::StrCat("key 'docker.tcp_address': plain TCP is allowed on loopback only, "
                     "not on \"",
                     where->host, "\"; use mutual TLS"));
  }
}

// Checks the values as a whole once all keys are read (and also for a config built in code).
void Validate(const Config& config, std::vector<std::string>& errors) {
  CheckAbsolute("root", config.root_dir, errors);
  CheckAbsolute("state", config.state_dir, errors);
  CheckAbsolute("grpc.address", config.socket_path, errors);
  // The kernel keeps a unix socket path in sockaddr_un.sun_path, NUL included.
  if (config.socket_path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    errors.push_back(absl::StrCat("key 'grpc.address': \"", config.socket_path, "\" is ",
                                  config.socket_path.size(),
                                  " bytes long; a unix socket path has at most ",
                                  sizeof(sockaddr_un{}.sun_path) - 1, " bytes"));
  }
  if (absl::StatusOr<base::LogLevel> level = base::ParseLogLevel(config.log_level); !level.ok()) {
    errors.push_back(absl::StrCat("key 'log_level': ", level.status().message()));
  }
  if (!config.streaming_address.empty()) {
    if (auto parsed = metrics::ParseHostPort(config.streaming_address); !parsed.ok()) {
      errors.push_back(absl::StrCat("key 'streaming.address': ", parsed.status().message(),
                                    " (an empty string turns streaming off)"));
    }
  }
  if (!config.docker_address.empty()) {
    CheckAbsolute("docker.address", config.docker_address, errors);
    if (config.docker_address.size() >= sizeof(sockaddr_un{}.sun_path)) {
      errors.push_back(absl::StrCat("key 'docker.address': \"", config.docker_address,
                                    "\" is too long for a unix socket path"));
    }
    if (config.docker_address == config.socket_path) {
      errors.push_back("key 'docker.address' must differ from 'grpc.address'");
    }
  }
  CheckDockerTcp(config, errors);
  if (config.streaming_tls_cert_file.empty() != config.streaming_tls_key_file.empty()) {
    errors.push_back(
        "keys 'streaming.tls_cert_file' and 'streaming.tls_key_file': give both, or neither "
        "(for a self-signed certificate)");
  }
  if (!config.metrics_address.empty()) {
    if (auto parsed = metrics::ParseHostPort(config.metrics_address); !parsed.ok()) {
      errors.push_back(absl::StrCat("key 'metrics.address': ", parsed.status().message(),
                                    " (an empty string turns metrics off)"));
    }
  }
  for (const auto& [name, handler] : config.runtimes) {
    if (!ValidHandlerName(name)) {
      errors.push_back(absl::StrCat("key 'runtime.handlers.", name,
                                    "': a handler name is 1 to 63 of a-z, 0-9, '-', '_', '.'"));
    }
    if (handler.binary.empty()) {
      errors.push_back(absl::StrCat("key 'runtime.handlers.", name, ".binary': must not be empty"));
    }
  }
  if (!config.runtimes.contains(config.default_runtime)) {
    std::vector<std::string> names;
    for (const auto& [name, handler] : config.runtimes) names.push_back(name);
    errors.push_back(absl::StrCat(
        "key 'runtime.default_handler': \"", config.default_runtime,
        "\" is not a configured handler (configured: ", absl::StrJoin(names, ", "), ")"));
  }
  if (config.max_concurrent_downloads < 1 || config.max_concurrent_downloads > 32) {
    errors.push_back(absl::StrCat("key 'images.max_concurrent_downloads': ",
                                  config.max_concurrent_downloads, " is not from 1 to 32"));
  }
  for (const auto& [host, settings] : config.registries) {
    std::string key = absl::StrCat("registries.\"", host, "\"");
    if (host.empty() || host.find('/') != std::string::npos ||
        host.find(' ') != std::string::npos) {
      errors.push_back(
          absl::StrCat("key '", key, "': a registry is a host[:port], without a path"));
    }
    for (const std::string& mirror : settings.mirrors) {
      if (auto parsed = images::ParseMirror(mirror); !parsed.ok()) {
        errors.push_back(absl::StrCat("key '", key, ".mirrors': ", parsed.status().message()));
      }
    }
    if (!settings.fallback_to_origin && settings.mirrors.empty()) {
      errors.push_back(
          absl::StrCat("key '", key, ".fallback_to_origin': false needs at least one mirror"));
    }
    if (!settings.ca_file.empty()) CheckAbsolute(key + ".ca_file", settings.ca_file, errors);
    if (settings.password.empty() != settings.username.empty()) {
      errors.push_back(absl::StrCat("key '", key, "': username and password go together"));
    }
  }
  CheckAbsolute("cni.conf_dir", config.cni_conf_dir, errors);
  if (config.cni_bin_dirs.empty()) {
    errors.push_back("key 'cni.bin_dirs': must name at least one directory");
  }
  for (const std::string& dir : config.cni_bin_dirs) CheckAbsolute("cni.bin_dirs", dir, errors);
  for (const std::string& dir : config.cdi_spec_dirs) CheckAbsolute("cdi.spec_dirs", dir, errors);
  if (!config.writable_layers_dir.empty()) {
    CheckAbsolute("images.writable_layers_dir", config.writable_layers_dir, errors);
  }
}

std::string Quoted(const std::string& value) {
  std::ostringstream out;
  out << toml::value<std::string>(value);
  return out.str();
}

}  // namespace

absl::string_view CgroupDriverSettingName(CgroupDriverSetting setting) {
  for (const auto& [name, value] : kCgroupDrivers) {
    if (value == setting) return name;
  }
  return "auto";
}

absl::string_view SnapshotterSettingName(SnapshotterSetting setting) {
  for (const auto& [name, value] : kSnapshotters) {
    if (value == setting) return name;
  }
  return "auto";
}

absl::StatusOr<Config> ParseConfig(absl::string_view toml_text, absl::string_view source) {
  toml::table root;
  try {
    root = toml::parse(std::string_view(toml_text.data(), toml_text.size()),
                       std::string_view(source.data(), source.size()));
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config ", source, " line ", e.source().begin.line, ": ", std::string(e.description())));
  }
  Config config;
  std::vector<std::string> errors;
  TableReader top(root, "", errors);
  top.String("root", config.root_dir);
  top.String("state", config.state_dir);
  top.String("log_level", config.log_level);
  if (const toml::table* grpc = top.Table("grpc")) {
    TableReader reader(*grpc, "grpc.", errors);
    reader.String("address", config.socket_path);
    reader.RejectUnknownKeys();
  }
  if (const toml::table* metrics = top.Table("metrics")) {
    TableReader reader(*metrics, "metrics.", errors);
    reader.String("address", config.metrics_address);
    reader.RejectUnknownKeys();
  }
  if (const toml::table* docker = top.Table("docker")) {
    TableReader reader(*docker, "docker.", errors);
    reader.String("address", config.docker_address);
    reader.String("group", config.docker_group);
    reader.String("tcp_address", config.docker_tcp_address);
    reader.String("tls_cert", config.docker_tls_cert);
    reader.String("tls_key", config.docker_tls_key);
    reader.String("tls_ca", config.docker_tls_ca);
    reader.Bool("allow_plain_tcp", config.docker_allow_plain_tcp);
    reader.RejectUnknownKeys();
  }
  if (const toml::table* streaming = top.Table("streaming")) {
    TableReader reader(*streaming, "streaming.", errors);
    reader.String("address", config.streaming_address);
    reader.Bool("tls", config.streaming_tls);
    reader.String("tls_cert_file", config.streaming_tls_cert_file);
    reader.String("tls_key_file", config.streaming_tls_key_file);
    reader.RejectUnknownKeys();
  }
  if (const toml::table* cgroup = top.Table("cgroup")) {
    TableReader reader(*cgroup, "cgroup.", errors);
    reader.Choice("driver", kCgroupDrivers, config.cgroup_driver);
    reader.RejectUnknownKeys();
  }
  if (const toml::table* runtime = top.Table("runtime")) {
    TableReader reader(*runtime, "runtime.", errors);
    reader.String("default_handler", config.default_runtime);
    reader.String("shim", config.shim_binary);
    if (const toml::table* handlers = reader.Table("handlers")) {
      // Handlers named here are added to the built-in runc and crun, or replace them by name.
      for (const auto& [key, node] : *handlers) {
        std::string name(key.str());
        std::string handler_prefix = absl::StrCat("runtime.handlers.", name, ".");
        const toml::table* handler_table = node.as_table();
        if (handler_table == nullptr) {
          errors.push_back(absl::StrCat("line ", node.source().begin.line,
                                        ": key 'runtime.handlers.", name,
                                        "': expected a table, got ", TypeName(node.type())));
          continue;
        }
        RuntimeHandler handler;
        TableReader handler_reader(*handler_table, handler_prefix, errors);
        handler_reader.String("binary", handler.binary);
        handler_reader.RejectUnknownKeys();
        config.runtimes[name] = handler;
      }
    }
    reader.RejectUnknownKeys();
  }
  if (const toml::table* images = top.Table("images")) {
    TableReader reader(*images, "images.", errors);
    reader.Choice("snapshotter", kSnapshotters, config.snapshotter);
    reader.String("writable_layers_dir", config.writable_layers_dir);
    reader.Int("max_concurrent_downloads", config.max_concurrent_downloads);
    reader.Duration("pull_progress_timeout", config.pull_progress_timeout);
    reader.Bool("unpack_while_downloading", config.unpack_while_downloading);
    reader.Bool("parallel_ranges", config.parallel_ranges);
    reader.Bool("sync_layers_at_commit", config.sync_layers_at_commit);
    reader.RejectUnknownKeys();
  }
  if (const toml::table* registries = top.Table("registries")) {
    for (const auto& [key, node] : *registries) {
      std::string host(key.str());
      std::string prefix = absl::StrCat("registries.\"", host, "\".");
      const toml::table* table = node.as_table();
      if (table == nullptr) {
        errors.push_back(absl::StrCat("line ", node.source().begin.line, ": key 'registries.\"",
                                      host, "\"': expected a table, got ", TypeName(node.type())));
        continue;
      }
      images::RegistryHostSettings settings;
      TableReader reader(*table, prefix, errors);
      reader.StringList("mirrors", settings.mirrors);
      reader.Bool("fallback_to_origin", settings.fallback_to_origin);
      reader.Bool("plain_http", settings.plain_http);
      reader.Bool("skip_verify", settings.skip_verify);
      reader.String("ca_file", settings.ca_file);
      reader.String("username", settings.username);
      reader.String("password", settings.password);
      reader.RejectUnknownKeys();
      config.registries[host] = settings;
    }
  }
  if (const toml::table* cni = top.Table("cni")) {
    TableReader reader(*cni, "cni.", errors);
    reader.String("conf_dir", config.cni_conf_dir);
    reader.StringList("bin_dirs", config.cni_bin_dirs);
    reader.RejectUnknownKeys();
  }
  if (const toml::table* cdi = top.Table("cdi")) {
    TableReader reader(*cdi, "cdi.", errors);
    reader.StringList("spec_dirs", config.cdi_spec_dirs);
    reader.RejectUnknownKeys();
  }
  top.RejectUnknownKeys();
  if (errors.empty()) Validate(config, errors);
  if (!errors.empty()) {
    // One line per error, each naming the file, so that all of them can be fixed in one go.
    std::string separator = absl::StrCat("\nconfig ", source, ": ");
    return absl::InvalidArgumentError(
        absl::StrCat("config ", source, ": ", absl::StrJoin(errors, separator)));
  }
  return config;
}

absl::StatusOr<Config> LoadConfig(const std::string& path, bool must_exist) {
  absl::StatusOr<std::string> text = base::ReadFile(path);
  if (!text.ok()) {
    if (absl::IsNotFound(text.status()) && !must_exist) return Config{};
    return absl::Status(text.status().code(), absl::StrCat("config: ", text.status().message()));
  }
  return ParseConfig(*text, path);
}

std::string RenderConfig(const Config& config) {
  std::string out;
  auto line = [&](const auto&... parts) { absl::StrAppend(&out, parts..., "\n"); };
  line("# kapald configuration (TOML). Every key is optional: a key left out keeps the value");
  line("# shown here. kapald reads /etc/kapal/kapal.toml, or the file given with --config.");
  line();
  line("# Persistent state: the database, image content and snapshots.");
  line("root = ", Quoted(config.root_dir));
  line("# Runtime state that does not survive a reboot: sockets, pod namespaces, shim files.");
  line("state = ", Quoted(config.state_dir));
  line("# debug, info, warn or error; --log-level overrides it.");
  line("log_level = ", Quoted(config.log_level));
  line();
  line("[grpc]");
  line("# Unix socket of the CRI server (mode 0660, owner root). Kubelet connects with");
  line("# --container-runtime-endpoint=unix://<this path>.");
  line("address = ", Quoted(config.socket_path));
  line();
  line("[metrics]");
  line("# HOST:PORT of the Prometheus endpoint (GET /metrics). Empty turns it off.");
  line("address = ", Quoted(config.metrics_address));
  line();
  line("[streaming]");
  line("# HOST:PORT of the streaming server that Exec, Attach and PortForward hand out URLs of");
  line("# (port 0: a free one). Keep it on loopback unless the clients are elsewhere: a URL is a");
  line("# single-use token valid for a minute, but the connection is plain HTTP. Empty turns it");
  line("# off.");
  line("address = ", Quoted(config.streaming_address));
  line("# HTTPS instead of HTTP. With both files empty a self-signed certificate is made at each");
  line("# start (clients such as crictl and kubelet do not verify it: the URL comes over the CRI");
  line("# socket). Otherwise a PEM certificate (chain) and its key.");
  line("tls = ", config.streaming_tls ? "true" : "false");
  line("tls_cert_file = ", Quoted(config.streaming_tls_cert_file));
  line("tls_key_file = ", Quoted(config.streaming_tls_key_file));
  line();
  line("[docker]");
  line("# The unix socket of the Docker Engine API (API 1.41: the docker CLI with");
  line("# DOCKER_HOST=unix://...). Whoever can use it can run anything as root on this node.");
  line("# Empty turns it off.");
  line("address = ", Quoted(config.docker_address));
  line("# A group whose members may use the socket too (mode 0660); empty: root only.");
  line("group = ", Quoted(config.docker_group));
  line(
      "# The API on TCP too (HOST:PORT, e.g. \"0.0.0.0:2376\"); empty: unix socket only. It needs");
  line(
      "# mutual TLS (DOCKER_TLS_VERIFY=1 clients): this server's PEM certificate and key, and the");
  line("# CA whose certificates clients must present. Plain TCP only with allow_plain_tcp = true");
  line("# on a loopback address.");
  line("tcp_address = ", Quoted(config.docker_tcp_address));
  line("tls_cert = ", Quoted(config.docker_tls_cert));
  line("tls_key = ", Quoted(config.docker_tls_key));
  line("tls_ca = ", Quoted(config.docker_tls_ca));
  line("allow_plain_tcp = ", config.docker_allow_plain_tcp ? "true" : "false");
  line();
  line("[cgroup]");
  line("# cgroupfs, systemd, or auto (systemd when systemd runs the host, else cgroupfs).");
  line("# Must match kubelet's --cgroup-driver.");
  line("driver = ", Quoted(std::string(CgroupDriverSettingName(config.cgroup_driver))));
  line();
  line("[runtime]");
  line("# The OCI runtime handler for pods that name no RuntimeClass.");
  line("default_handler = ", Quoted(config.default_runtime));
  line("# kapal-shim, one per container; empty: the one installed next to kapald.");
  line("shim = ", Quoted(config.shim_binary));
  for (const auto& [name, handler] : config.runtimes) {
    line();
    line("# OCI runtime for RuntimeClass handler \"", name,
         "\": a path, or a name looked up in PATH.");
    line("[runtime.handlers.", name, "]");
    line("binary = ", Quoted(handler.binary));
  }
  line();
  line("[images]");
  line(
      "# How container root filesystems are layered: overlay, native (full copies, when overlayfs");
  line("# is not available), or auto (overlay when it can be mounted under root).");
  line("snapshotter = ", Quoted(std::string(SnapshotterSettingName(config.snapshotter))));
  line("# Containers' writable layers on another filesystem than images (kubelet then watches the");
  line("# two apart); \"\": with the images under root.");
  line("writable_layers_dir = ", Quoted(config.writable_layers_dir));
  line("# Layers downloaded at once per pull (1 to 32).");
  line("max_concurrent_downloads = ", config.max_concurrent_downloads);
  line("# A pull whose downloads move no byte for this long is cancelled (\"0s\": never).");
  line("pull_progress_timeout = ",
       Quoted(absl::FormatDuration(absl::Seconds(config.pull_progress_timeout.count()))));
  line("# Layers of 64 MiB and more: unpacked while they download (helps when the registry is");
  line(
      "# slower than inflate; slower on loopback), and fetched as 4 byte ranges at once where the");
  line("# registry serves ranges.");
  line("unpack_while_downloading = ", config.unpack_while_downloading ? "true" : "false");
  line("parallel_ranges = ", config.parallel_ranges ? "true" : "false");
  line("# true: each layer's files are synced before its commit. false: a pull does not wait for");
  line("# them (the layer's blob is synced; after a crash of the machine, layers not yet synced");
  line("# are unpacked again from their blobs at start); they are synced 10 s after, once no");
  line("# pull is writing (at most 60 s later).");
  line("sync_layers_at_commit = ", config.sync_layers_at_commit ? "true" : "false");
  line();
  line("# Per-registry settings, one table per registry host. Registries on loopback speak plain");
  line(
      "# HTTP without any; every other one HTTPS unless plain_http or skip_verify says otherwise.");
  line("#   [registries.\"registry.k8s.io\"]");
  line("#   mirrors = [\"http://127.0.0.1:5000\"]  # tried in order before the registry itself");
  line("#   fallback_to_origin = false             # only the mirrors (an air-gapped node)");
  line("#   plain_http = false");
  line("#   skip_verify = false");
  line("#   ca_file = \"/etc/kapal/certs/registry-ca.pem\"");
  line("#   username = \"\"");
  line("#   password = \"\"");
  for (const auto& [host, settings] : config.registries) {
    line("[registries.", Quoted(host), "]");
    std::vector<std::string> mirrors;
    for (const std::string& mirror : settings.mirrors) mirrors.push_back(Quoted(mirror));
    line("mirrors = [", absl::StrJoin(mirrors, ", "), "]");
    line("fallback_to_origin = ", settings.fallback_to_origin ? "true" : "false");
    line("plain_http = ", settings.plain_http ? "true" : "false");
    line("skip_verify = ", settings.skip_verify ? "true" : "false");
    line("ca_file = ", Quoted(settings.ca_file));
    line("username = ", Quoted(settings.username));
    line("password = ", Quoted(settings.password));
    line();
  }
  line();
  line("[cni]");
  line("# Network configuration files (.conf, .conflist, .json); the first in name order is used.");
  line("conf_dir = ", Quoted(config.cni_conf_dir));
  line("# Directories searched for CNI plugin binaries, in order.");
  std::vector<std::string> dirs;
  for (const std::string& dir : config.cni_bin_dirs) dirs.push_back(Quoted(dir));
  line("bin_dirs = [", absl::StrJoin(dirs, ", "), "]");
  line();
  line("[cdi]");
  line("# CDI device specs (JSON or YAML) for ContainerConfig.CDI_devices, lowest priority first.");
  std::vector<std::string> cdi_dirs;
  for (const std::string& dir : config.cdi_spec_dirs) cdi_dirs.push_back(Quoted(dir));
  line("spec_dirs = [", absl::StrJoin(cdi_dirs, ", "), "]");
  return out;
}

nlohmann::json ConfigToJson(const Config& config) {
  nlohmann::json handlers = nlohmann::json::object();
  for (const auto& [name, handler] : config.runtimes) handlers[name] = {{"binary", handler.binary}};
  nlohmann::json registries = nlohmann::json::object();
  for (const auto& [host, settings] : config.registries) {
    registries[host] = {{"mirrors", settings.mirrors},
                        {"fallback_to_origin", settings.fallback_to_origin},
                        {"plain_http", settings.plain_http},
                        {"skip_verify", settings.skip_verify},
                        {"ca_file", settings.ca_file},
                        {"username", settings.username},
                        {"password", settings.password.empty() ? "" : "<redacted>"}};
  }
  return {
      {"registries", registries},
      {"root", config.root_dir},
      {"state", config.state_dir},
      {"log_level", config.log_level},
      {"grpc", {{"address", config.socket_path}}},
      {"metrics", {{"address", config.metrics_address}}},
      {"streaming",
       {{"address", config.streaming_address},
        {"tls", config.streaming_tls},
        {"tls_cert_file", config.streaming_tls_cert_file},
        {"tls_key_file", config.streaming_tls_key_file}}},
      {"docker",
       {{"address", config.docker_address},
        {"group", config.docker_group},
        {"tcp_address", config.docker_tcp_address},
        {"tls_cert", config.docker_tls_cert},
        {"tls_key", config.docker_tls_key},
        {"tls_ca", config.docker_tls_ca},
        {"allow_plain_tcp", config.docker_allow_plain_tcp}}},
      {"cgroup", {{"driver", CgroupDriverSettingName(config.cgroup_driver)}}},
      {"runtime",
       {{"default_handler", config.default_runtime},
        {"shim", config.shim_binary},
        {"handlers", handlers}}},
      {"cni", {{"conf_dir", config.cni_conf_dir}, {"bin_dirs", config.cni_bin_dirs}}},
      {"cdi", {{"spec_dirs", config.cdi_spec_dirs}}},
      {"images",
       {{"snapshotter", SnapshotterSettingName(config.snapshotter)},
        {"writable_layers_dir", config.writable_layers_dir},
        {"max_concurrent_downloads", config.max_concurrent_downloads},
        {"pull_progress_timeout",
         absl::FormatDuration(absl::Seconds(config.pull_progress_timeout.count()))},
        {"unpack_while_downloading", config.unpack_while_downloading},
        {"parallel_ranges", config.parallel_ranges},
        {"sync_layers_at_commit", config.sync_layers_at_commit}}},
  };
}

}  // namespace kapal::daemon
