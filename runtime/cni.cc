#include "runtime/cni.h"

#include <dirent.h>

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/child_process.h"
#include "base/files.h"

namespace kapal::runtime {

namespace {

// Plugins that hang (a stuck IPAM lock, say) must not hang RunPodSandbox forever.
constexpr std::chrono::seconds kPluginTimeout(60);

std::vector<std::string> NetworkConfigFiles(const std::string& dir) {
  std::vector<std::string> names;
  DIR* stream = ::opendir(dir.c_str());
  if (stream == nullptr) return names;
  while (dirent* entry = ::readdir(stream)) {
    std::string name = entry->d_name;
    if (absl::EndsWith(name, ".conf") || absl::EndsWith(name, ".conflist") ||
        absl::EndsWith(name, ".json")) {
      names.push_back(name);
    }
  }
  ::closedir(stream);
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

std::vector<CniConfigFile> CniNetwork::ListConfigs(const std::string& conf_dir) {
  std::vector<CniConfigFile> configs;
  for (const std::string& file : NetworkConfigFiles(conf_dir)) {
    CniConfigFile config;
    config.path = absl::StrCat(conf_dir, "/", file);
    absl::StatusOr<std::string> text = base::ReadFile(config.path);
    if (!text.ok()) continue;
    config.config = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
    if (config.config.is_discarded() || !config.config.is_object() ||
        !config.config.contains("name") || !config.config["name"].is_string()) {
      continue;
    }
    config.name = config.config["name"].get<std::string>();
    configs.push_back(std::move(config));
  }
  return configs;
}

std::string NetworkNameOf(const runtime::v1::PodSandboxConfig& config) {
  auto found = config.annotations().find(kNetworkAnnotation);
  return found == config.annotations().end() ? "" : found->second;
}

absl::StatusOr<CniNetwork> CniNetwork::Load(const std::string& conf_dir,
                                            const std::vector<std::string>& bin_dirs,
                                            const std::string& name) {
  std::vector<std::string> files = NetworkConfigFiles(conf_dir);
  if (files.empty()) {
    return absl::NotFoundError(
        absl::StrCat("no network config (.conf, .conflist, .json) in ", conf_dir));
  }
  std::string path = absl::StrCat(conf_dir, "/", files.front());
  if (!name.empty()) {
    path.clear();
    for (const CniConfigFile& config : ListConfigs(conf_dir)) {
      if (config.name == name) {
        path = config.path;
        break;
      }
    }
    if (path.empty()) {
      return absl::NotFoundError(
          absl::StrCat("no network config named \"", name, "\" in ", conf_dir));
    }
  }
  CniNetwork network;
  network.file_ = path;
  network.bin_dirs_ = bin_dirs;
  absl::StatusOr<std::string> text = base::ReadFile(path);
  if (!text.ok()) return text.status();
  nlohmann::json config = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a JSON object"));
  }
  if (!config.contains("name") || !config["name"].is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " has no \"name\""));
  }
  network.name_ = config["name"].get<std::string>();
  network.cni_version = config.value("cniVersion", std::string("0.4.0"));
  if (config.contains("plugins")) {
    if (!config["plugins"].is_array() || config["plugins"].empty()) {
      return absl::InvalidArgumentError(absl::StrCat(path, " has no \"plugins\" list"));
    }
    for (const auto& plugin : config["plugins"]) network.plugins_.push_back(plugin);
  } else if (absl::EndsWith(path, ".conflist")) {
    return absl::InvalidArgumentError(absl::StrCat(path, " has no \"plugins\" list"));
  } else {
    network.plugins_.push_back(config);
  }
  for (const nlohmann::json& plugin : network.plugins_) {
    if (!plugin.is_object() || !plugin.contains("type") || !plugin["type"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": a plugin has no \"type\""));
    }
    std::string type = plugin["type"].get<std::string>();
    // A type is a file name in bin_dirs; a path would let a config run any binary on the host.
    if (type.empty() || type.find('/') != std::string::npos || type == "." || type == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": plugin type \"", type, "\" is not a plain file name"));
    }
    bool found = false;
    for (const std::string& dir : bin_dirs) {
      if (base::FindExecutable(absl::StrCat(dir, "/", type)).ok()) {
        found = true;
        break;
      }
    }
    if (!found) {
      return absl::InvalidArgumentError(absl::StrCat("cni plugin \"", type, "\" named by ", path,
                                                     " is not in ",
                                                     absl::StrJoin(bin_dirs, " or ")));
    }
  }
  return network;
}

absl::StatusOr<nlohmann::json> CniNetwork::Invoke(const std::string& command,
                                                  const nlohmann::json& plugin, const CniPod& pod,
                                                  const nlohmann::json& prev_result) const {
  std::string type = plugin["type"].get<std::string>();
  std::string binary;
  for (const std::string& dir : bin_dirs_) {
    if (base::FindExecutable(absl::StrCat(dir, "/", type)).ok()) {
      binary = absl::StrCat(dir, "/", type);
      break;
    }
  }
  if (binary.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cni plugin \"", type, "\" is not in ", absl::StrJoin(bin_dirs_, " or ")));
  }
  nlohmann::json input = plugin;
  input["name"] = name_;
  input["cniVersion"] = cni_version;
  if (!prev_result.is_null()) input["prevResult"] = prev_result;
  bool wants_ports = plugin.contains("capabilities") && plugin["capabilities"].is_object() &&
                     plugin["capabilities"].value("portMappings", false);
  if (wants_ports && !pod.port_mappings.empty()) {
    nlohmann::json mappings = nlohmann::json::array();
    for (const PortMapping& mapping : pod.port_mappings) {
      nlohmann::json entry = {{"hostPort", mapping.host_port},
                              {"containerPort", mapping.container_port},
                              {"protocol", mapping.protocol}};
      if (!mapping.host_ip.empty()) entry["hostIP"] = mapping.host_ip;
      mappings.push_back(entry);
    }
    input["runtimeConfig"]["portMappings"] = mappings;
  }
  base::ChildOptions options;
  options.environment = {
      {"CNI_COMMAND", command},
      {"CNI_CONTAINERID", pod.sandbox_id},
      {"CNI_NETNS", pod.netns_path},
      {"CNI_IFNAME", "eth0"},
      {"CNI_PATH", absl::StrJoin(bin_dirs_, ":")},
      {"CNI_ARGS", absl::StrCat("IgnoreUnknown=1;K8S_POD_NAMESPACE=", pod.pod_namespace,
                                ";K8S_POD_NAME=", pod.name, ";K8S_POD_INFRA_CONTAINER_ID=",
                                pod.sandbox_id, ";K8S_POD_UID=", pod.uid)},
  };
  absl::StatusOr<base::CommandResult> ran =
      base::RunCommand({binary}, input.dump(), kPluginTimeout, options);
  if (!ran.ok()) {
    return absl::Status(ran.status().code(), absl::StrCat("cni plugin ", type, " ", command, ": ",
                                                          ran.status().message()));
  }
  nlohmann::json output = nlohmann::json::parse(ran->output, nullptr, false);
  if (!ran->Succeeded()) {
    // Plugins report errors as {"code":N,"msg":"...","details":"..."} on stdout.
    std::string message = ran->Describe();
    if (output.is_object() && output.contains("msg")) {
      message = output.value("msg", "");
      if (output.contains("details")) message += ": " + output.value("details", "");
    }
    return absl::UnavailableError(
        absl::StrCat("cni plugin ", type, " ", command, " failed: ", message));
  }
  if (command != "ADD") return nlohmann::json();
  if (output.is_discarded() || !output.is_object()) {
    return absl::InternalError(absl::StrCat("cni plugin ", type, " ADD printed no JSON result"));
  }
  return output;
}

// Plugins whose work is done without them, each an exec less per pod start and stop:
//   - portmap for a pod without host ports (ADD passes the result on, DEL finds no rules);
//   - loopback: kapald brings lo up itself when it makes the namespace (as containerd does
//     with its built-in loopback network), and lo goes with the namespace.
bool Skippable(const nlohmann::json& plugin, const CniPod& pod) {
  std::string type = plugin.value("type", std::string());
  return type == "loopback" || (type == "portmap" && pod.port_mappings.empty());
}

absl::StatusOr<nlohmann::json> CniNetwork::Add(const CniPod& pod) const {
  nlohmann::json result;
  for (const nlohmann::json& plugin : plugins_) {
    if (Skippable(plugin, pod)) continue;
    absl::StatusOr<nlohmann::json> next = Invoke("ADD", plugin, pod, result);
    if (!next.ok()) {
      // Undo what the earlier plugins did (an IP allocated, a veth made).
      (void)Del(pod, result);
      return next.status();
    }
    result = std::move(*next);
  }
  return result;
}

absl::Status CniNetwork::Del(const CniPod& pod, const nlohmann::json& add_result) const {
  absl::Status first;
  for (auto plugin = plugins_.rbegin(); plugin != plugins_.rend(); ++plugin) {
    if (Skippable(*plugin, pod)) continue;
    absl::StatusOr<nlohmann::json> done = Invoke("DEL", *plugin, pod, add_result);
    if (!done.ok()) first.Update(done.status());
  }
  return first;
}

std::vector<std::string> CniNetwork::Addresses(const nlohmann::json& result) {
  std::vector<std::string> v4, v6;
  if (!result.is_object() || !result.contains("ips") || !result["ips"].is_array()) return v4;
  for (const nlohmann::json& ip : result["ips"]) {
    std::string address = ip.value("address", "");
    address = address.substr(0, address.find('/'));
    if (address.empty()) continue;
    (address.find(':') == std::string::npos ? v4 : v6).push_back(address);
  }
  v4.insert(v4.end(), v6.begin(), v6.end());
  return v4;
}

}  // namespace kapal::runtime
