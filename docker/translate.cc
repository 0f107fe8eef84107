#include "docker/translate.h"

#include <algorithm>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "runtime/cni.h"

namespace kapal::docker {

namespace {

using runtime::v1::ContainerConfig;
using runtime::v1::PodSandboxConfig;

// The strings of a JSON array (or one string) at KEY; absent or null is empty.
absl::StatusOr<std::vector<std::string>> StringList(const nlohmann::json& object,
                                                    const std::string& key) {
  std::vector<std::string> values;
  auto found = object.find(key);
  if (found == object.end() || found->is_null()) return values;
  if (found->is_string()) return std::vector<std::string>{found->get<std::string>()};
  if (!found->is_array()) return absl::InvalidArgumentError(key + " must be a list of strings");
  for (const nlohmann::json& item : *found) {
    if (!item.is_string()) return absl::InvalidArgumentError(key + " must be a list of strings");
    values.push_back(item.get<std::string>());
  }
  return values;
}

std::string StringField(const nlohmann::json& object, const std::string& key) {
  auto found = object.find(key);
  return found != object.end() && found->is_string() ? found->get<std::string>() : "";
}

int64_t IntField(const nlohmann::json& object, const std::string& key) {
  auto found = object.find(key);
  return found != object.end() && found->is_number_integer() ? found->get<int64_t>() : 0;
}

bool BoolField(const nlohmann::json& object, const std::string& key) {
  auto found = object.find(key);
  return found != object.end() && found->is_boolean() && found->get<bool>();
}

const nlohmann::json& ObjectField(const nlohmann::json& object, const std::string& key) {
  static const nlohmann::json kEmpty = nlohmann::json::object();
  auto found = object.find(key);
  return found != object.end() && found->is_object() ? *found : kEmpty;
}

// Docker's User: "uid", "name", "uid:gid", "name:gid". Group names need /etc/group of the image,
// which CRI cannot name, so only numeric groups are taken.
absl::Status ApplyUser(const std::string& user,
                       runtime::v1::LinuxContainerSecurityContext& security) {
  if (user.empty()) return absl::OkStatus();
  std::pair<std::string, std::string> parts = absl::StrSplit(user, absl::MaxSplits(':', 1));
  int64_t uid = 0;
  if (absl::SimpleAtoi(parts.first, &uid) && uid >= 0) {
    security.mutable_run_as_user()->set_value(uid);
  } else if (!parts.first.empty()) {
    security.set_run_as_username(parts.first);
  }
  if (!parts.second.empty()) {
    int64_t gid = 0;
    if (!absl::SimpleAtoi(parts.second, &gid) || gid < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "User \"", user, "\": kapal takes a numeric group only (", parts.first, ":GID)"));
    }
    security.mutable_run_as_group()->set_value(gid);
  }
  return absl::OkStatus();
}

// HostConfig.PortBindings {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]}.
absl::Status ApplyPorts(const nlohmann::json& host_config, const TranslateContext& context,
                        PodSandboxConfig& pod) {
  for (const auto& [key, bindings] : ObjectField(host_config, "PortBindings").items()) {
    std::pair<std::string, std::string> port_and_protocol =
        absl::StrSplit(key, absl::MaxSplits('/', 1));
    int container_port = 0;
    if (!absl::SimpleAtoi(port_and_protocol.first, &container_port) || container_port <= 0 ||
        container_port > 65535) {
      return absl::InvalidArgumentError(absl::StrCat("port \"", key, "\" is not a port number"));
    }
    std::string protocol =
        port_and_protocol.second.empty() ? "tcp" : absl::AsciiStrToLower(port_and_protocol.second);
    runtime::v1::Protocol cri_protocol;
    if (protocol == "tcp") {
      cri_protocol = runtime::v1::TCP;
    } else if (protocol == "udp") {
      cri_protocol = runtime::v1::UDP;
    } else if (protocol == "sctp") {
      cri_protocol = runtime::v1::SCTP;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("port \"", key, "\": unknown protocol"));
    }
    if (!bindings.is_array()) continue;
    for (const nlohmann::json& binding : bindings) {
      std::string host_port_text = StringField(binding, "HostPort");
      int host_port = 0;
      if (host_port_text.empty()) {
        absl::StatusOr<int> free = context.free_port();
        if (!free.ok()) return free.status();
        host_port = *free;
      } else if (!absl::SimpleAtoi(host_port_text, &host_port) || host_port <= 0 ||
                 host_port > 65535) {
        return absl::InvalidArgumentError(
            absl::StrCat("host port \"", host_port_text, "\" of ", key, " is not a port number"));
      }
      runtime::v1::PortMapping* mapping = pod.add_port_mappings();
      mapping->set_protocol(cri_protocol);
      mapping->set_container_port(container_port);
      mapping->set_host_port(host_port);
      std::string host_ip = StringField(binding, "HostIp");
      if (host_ip != "0.0.0.0") mapping->set_host_ip(host_ip);
    }
  }
  return absl::OkStatus();
}

absl::Status ApplyResources(const nlohmann::json& host_config,
                            runtime::v1::LinuxContainerResources& resources) {
  if (int64_t memory = IntField(host_config, "Memory"); memory > 0) {
    resources.set_memory_limit_in_bytes(memory);
  }
  if (int64_t nano_cpus = IntField(host_config, "NanoCpus"); nano_cpus > 0) {
    // --cpus: a quota per 100 ms period, as Docker sets it.
    resources.set_cpu_period(100000);
    resources.set_cpu_quota(nano_cpus / 10000);
  }
  if (int64_t period = IntField(host_config, "CpuPeriod"); period > 0) {
    resources.set_cpu_period(period);
  }
  if (int64_t quota = IntField(host_config, "CpuQuota"); quota > 0) resources.set_cpu_quota(quota);
  if (int64_t shares = IntField(host_config, "CpuShares"); shares > 0) {
    resources.set_cpu_shares(shares);
  }
  std::string cpuset = StringField(host_config, "CpusetCpus");
  if (!cpuset.empty()) resources.set_cpuset_cpus(cpuset);
  std::string mems = StringField(host_config, "CpusetMems");
  if (!mems.empty()) resources.set_cpuset_mems(mems);
  return absl::OkStatus();
}

// What kapal cannot do yet is refused by name rather than silently left out.
absl::Status RefuseUnsupported(const nlohmann::json& host_config) {
  const nlohmann::json& restart = ObjectField(host_config, "RestartPolicy");
  std::string policy = StringField(restart, "Name");
  if (!policy.empty() && policy != "no" && policy != "always" && policy != "unless-stopped" &&
      policy != "on-failure") {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid restart policy '", policy, "' (no, always, unless-stopped, on-failure[:N])"));
  }
  auto retries = restart.find("MaximumRetryCount");
  if (retries != restart.end() && retries->is_number_integer() && retries->get<int64_t>() != 0) {
    if (retries->get<int64_t>() < 0) {
      return absl::InvalidArgumentError("maximum retry count cannot be negative");
    }
    if (policy != "on-failure") {
      return absl::InvalidArgumentError(
          absl::StrCat("maximum retry count cannot be used with restart policy '", policy, "'"));
    }
  }
  if (!policy.empty() && policy != "no" && host_config.value("AutoRemove", false)) {
    return absl::InvalidArgumentError("can't create 'AutoRemove' container with restart policy");
  }
  for (const char* key : {"VolumesFrom", "Links", "Devices"}) {
    auto found = host_config.find(key);
    if (found != host_config.end() && found->is_array() && !found->empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("HostConfig.", key, " is not supported by kapal's Docker API yet"));
    }
  }
  std::string driver = StringField(host_config, "VolumeDriver");
  if (!driver.empty() && driver != "local") {
    return absl::InvalidArgumentError(
        absl::StrCat("volume driver \"", driver, "\": kapal has only the local driver"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::string> CheckContainerName(const std::string& name) {
  std::string bare = absl::StartsWith(name, "/") ? name.substr(1) : name;
  bool valid = bare.size() >= 2 && absl::ascii_isalnum(bare[0]);
  for (char c : bare) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '.' && c != '-') valid = false;
  }
  if (!valid) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Invalid container name (", name, "), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"));
  }
  return bare;
}

std::string GenerateContainerName() {
  static constexpr const char* kAdjectives[] = {
      "brave", "calm",  "eager", "fond",  "gentle", "happy", "keen",  "lucid",
      "merry", "noble", "proud", "quiet", "sharp",  "swift", "vivid", "witty"};
  static constexpr const char* kNames[] = {
      "curie",   "darwin",  "euler",  "fermi",   "galois",  "hopper", "kepler", "lovelace",
      "meitner", "noether", "pascal", "ritchie", "shannon", "turing", "volta",  "wozniak"};
  std::random_device random;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string suffix;
  for (int i = 0; i < 4; ++i) suffix += kHex[random() % 16];
  return absl::StrCat(kAdjectives[random() % 16], "_", kNames[random() % 16], "_", suffix);
}

absl::StatusOr<VolumeMount> ParseBind(const std::string& text) {
  std::vector<std::string> parts = absl::StrSplit(text, ':');
  if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid volume \"", text, "\": expected SOURCE:DESTINATION[:ro]"));
  }
  VolumeMount mount;
  mount.source = parts[0];
  mount.destination = parts[1];
  mount.kind = parts[0][0] == '/' ? "bind" : "volume";
  if (parts.size() == 3) {
    for (absl::string_view option : absl::StrSplit(parts[2], ',')) {
      if (option == "ro") {
        mount.read_only = true;
      } else if (option != "rw" && option != "z" && option != "Z" && option != "rprivate" &&
                 option != "private") {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid volume \"", text, "\": unknown option \"", option, "\""));
      }
    }
  }
  if (mount.destination[0] != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid volume \"", text, "\": the destination must be an absolute path"));
  }
  if (mount.kind == "volume") {
    for (char c : mount.source) {
      if (!absl::ascii_isalnum(c) && c != '_' && c != '.' && c != '-') {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid volume name \"", mount.source,
                         "\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"));
      }
    }
  }
  return mount;
}

absl::StatusOr<std::vector<VolumeMount>> MountsOf(const nlohmann::json& body) {
  std::vector<VolumeMount> mounts;
  const nlohmann::json& host_config = ObjectField(body, "HostConfig");
  absl::StatusOr<std::vector<std::string>> binds = StringList(host_config, "Binds");
  if (!binds.ok()) return binds.status();
  for (const std::string& bind : *binds) {
    absl::StatusOr<VolumeMount> mount = ParseBind(bind);
    if (!mount.ok()) return mount.status();
    mounts.push_back(*mount);
  }
  auto found = host_config.find("Mounts");
  if (found != host_config.end() && found->is_array()) {
    for (const nlohmann::json& item : *found) {
      VolumeMount mount;
      mount.kind = StringField(item, "Type");
      mount.source = StringField(item, "Source");
      mount.destination = StringField(item, "Target");
      mount.read_only = BoolField(item, "ReadOnly");
      if (mount.kind != "bind" && mount.kind != "volume") {
        return absl::InvalidArgumentError(
            absl::StrCat("mount type \"", mount.kind, "\" is not supported (bind and volume are)"));
      }
      if (mount.destination.empty() || mount.destination[0] != '/' ||
          (mount.kind == "bind" && (mount.source.empty() || mount.source[0] != '/'))) {
        return absl::InvalidArgumentError(
            "a mount needs an absolute target (and an absolute source for a bind)");
      }
      if (mount.kind == "volume" && mount.source.empty()) {
        return absl::InvalidArgumentError("anonymous volumes are not supported yet: name it");
      }
      mounts.push_back(mount);
    }
  }
  return mounts;
}

absl::StatusOr<Translated> TranslateCreate(const nlohmann::json& body, const std::string& name,
                                           const TranslateContext& context) {
  if (!body.is_object()) return absl::InvalidArgumentError("the body must be a JSON object");
  const nlohmann::json& host_config = ObjectField(body, "HostConfig");
  if (absl::Status refused = RefuseUnsupported(host_config); !refused.ok()) return refused;
  Translated out;
  PodSandboxConfig& pod = out.pod;
  ContainerConfig& container = out.container;

  pod.mutable_metadata()->set_name(name);
  pod.mutable_metadata()->set_namespace_(kPodNamespace);
  pod.mutable_metadata()->set_uid(absl::StrCat(name, "-", GenerateContainerName()));
  std::string hostname = StringField(body, "Hostname");
  pod.set_hostname(hostname.empty() ? name : hostname);
  (*pod.mutable_labels())[kDockerLabel] = "container";

  std::string network = StringField(host_config, "NetworkMode");
  auto& namespaces = *pod.mutable_linux()->mutable_security_context()->mutable_namespace_options();
  if (network == "host") {
    namespaces.set_network(runtime::v1::NODE);
  } else if (network == "none") {
    (*pod.mutable_annotations())[runtime::kNetworkAnnotation] = runtime::kNoNetwork;
  } else if (!network.empty() && network != "default" && network != "bridge") {
    if (absl::StartsWith(network, "container:")) {
      return absl::InvalidArgumentError("--network container:NAME is not supported yet");
    }
    if (!context.network_exists || !context.network_exists(network)) {
      return absl::NotFoundError(absl::StrCat("network ", network, " not found"));
    }
    (*pod.mutable_annotations())[runtime::kNetworkAnnotation] = network;
  }
  if (StringField(host_config, "PidMode") == "host") namespaces.set_pid(runtime::v1::NODE);
  if (StringField(host_config, "IpcMode") == "host") namespaces.set_ipc(runtime::v1::NODE);
  if (network != "host" && network != "none") {
    if (absl::Status ported = ApplyPorts(host_config, context, pod); !ported.ok()) return ported;
  } else if (!ObjectField(host_config, "PortBindings").empty()) {
    out.warnings.push_back("published ports are discarded with --network " + network);
  }

  container.mutable_metadata()->set_name(name);
  container.mutable_image()->set_image(context.image_id);
  container.mutable_image()->set_user_specified_image(context.image_reference);
  // Entrypoint replaces the image's (and then its Cmd too, as in Docker); Cmd alone keeps the
  // image's entrypoint. CRI's command and args mean the same.
  absl::StatusOr<std::vector<std::string>> entrypoint = StringList(body, "Entrypoint");
  if (!entrypoint.ok()) return entrypoint.status();
  absl::StatusOr<std::vector<std::string>> cmd = StringList(body, "Cmd");
  if (!cmd.ok()) return cmd.status();
  for (const std::string& word : *entrypoint) container.add_command(word);
  for (const std::string& word : *cmd) container.add_args(word);
  absl::StatusOr<std::vector<std::string>> env = StringList(body, "Env");
  if (!env.ok()) return env.status();
  for (const std::string& item : *env) {
    std::pair<std::string, std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
    if (kv.first.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("environment entry \"", item, "\" has no name"));
    }
    runtime::v1::KeyValue* added = container.add_envs();
    added->set_key(kv.first);
    added->set_value(kv.second);
  }
  container.set_working_dir(StringField(body, "WorkingDir"));
  container.set_tty(BoolField(body, "Tty"));
  container.set_stdin(BoolField(body, "OpenStdin"));
  container.set_stdin_once(BoolField(body, "StdinOnce"));
  for (const auto& [key, value] : ObjectField(body, "Labels").items()) {
    if (!value.is_string()) return absl::InvalidArgumentError("label values must be strings");
    (*container.mutable_labels())[key] = value.get<std::string>();
    (*pod.mutable_labels())[key] = value.get<std::string>();
  }
  (*pod.mutable_labels())[kDockerLabel] = "container";
  (*container.mutable_annotations())[kNameAnnotation] = name;
  (*container.mutable_annotations())[kCreateAnnotation] = body.dump();

  absl::StatusOr<std::vector<VolumeMount>> mounts = MountsOf(body);
  if (!mounts.ok()) return mounts.status();
  for (const VolumeMount& mount : *mounts) {
    runtime::v1::Mount* added = container.add_mounts();
    added->set_container_path(mount.destination);
    added->set_readonly(mount.read_only);
    if (mount.kind == "volume") {
      absl::StatusOr<std::string> path = context.volume_path(mount.source);
      if (!path.ok()) return path.status();
      added->set_host_path(*path);
    } else {
      added->set_host_path(mount.source);
    }
  }

  auto& linux = *container.mutable_linux();
  if (absl::Status applied = ApplyResources(host_config, *linux.mutable_resources());
      !applied.ok()) {
    return applied;
  }
  auto& security = *linux.mutable_security_context();
  if (absl::Status applied = ApplyUser(StringField(body, "User"), security); !applied.ok()) {
    return applied;
  }
  bool privileged = BoolField(host_config, "Privileged");
  security.set_privileged(privileged);
  if (privileged) pod.mutable_linux()->mutable_security_context()->set_privileged(true);
  security.set_readonly_rootfs(BoolField(host_config, "ReadonlyRootfs"));
  absl::StatusOr<std::vector<std::string>> cap_add = StringList(host_config, "CapAdd");
  absl::StatusOr<std::vector<std::string>> cap_drop = StringList(host_config, "CapDrop");
  if (!cap_add.ok()) return cap_add.status();
  if (!cap_drop.ok()) return cap_drop.status();
  auto capability_name = [](std::string cap) {
    cap = absl::AsciiStrToUpper(cap);
    return absl::StartsWith(cap, "CAP_") || cap == "ALL" ? cap : "CAP_" + cap;
  };
  for (const std::string& cap : *cap_add) {
    security.mutable_capabilities()->add_add_capabilities(capability_name(cap));
  }
  for (const std::string& cap : *cap_drop) {
    security.mutable_capabilities()->add_drop_capabilities(capability_name(cap));
  }
  // Docker confines every container with its default seccomp profile unless told otherwise.
  bool seccomp_unconfined = privileged;
  absl::StatusOr<std::vector<std::string>> security_options =
      StringList(host_config, "SecurityOpt");
  if (!security_options.ok()) return security_options.status();
  for (const std::string& option : *security_options) {
    std::string normalized = option;
    std::replace(normalized.begin(), normalized.end(), ':', '=');
    if (normalized == "no-new-privileges" || normalized == "no-new-privileges=true") {
      security.set_no_new_privs(true);
    } else if (normalized == "seccomp=unconfined") {
      seccomp_unconfined = true;
    } else if (normalized == "no-new-privileges=false") {
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("security option \"", option, "\" is not supported by kapal yet"));
    }
  }
  security.mutable_seccomp()->set_profile_type(seccomp_unconfined
                                                   ? runtime::v1::SecurityProfile::Unconfined
                                                   : runtime::v1::SecurityProfile::RuntimeDefault);
  return out;
}

}  // namespace kapal::docker
