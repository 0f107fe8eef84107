#include "runtime/image_config.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "nlohmann/json.hpp"

namespace kapal::runtime {

namespace {

using runtime::v1::ContainerConfig;

constexpr char kDefaultPath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

std::vector<std::string> StringList(const nlohmann::json& value) {
  std::vector<std::string> list;
  if (!value.is_array()) return list;
  for (const nlohmann::json& item : value) {
    if (item.is_string()) list.push_back(item.get<std::string>());
  }
  return list;
}

}  // namespace

ImageRuntimeConfig ImageRuntimeConfig::Parse(const std::string& image_config_json) {
  ImageRuntimeConfig parsed;
  nlohmann::json document = nlohmann::json::parse(image_config_json, nullptr, false);
  if (!document.is_object() || !document.contains("config") || !document["config"].is_object()) {
    return parsed;
  }
  const nlohmann::json& config = document["config"];
  parsed.entrypoint = StringList(config.value("Entrypoint", nlohmann::json()));
  parsed.cmd = StringList(config.value("Cmd", nlohmann::json()));
  parsed.env = StringList(config.value("Env", nlohmann::json()));
  if (config.contains("WorkingDir") && config["WorkingDir"].is_string()) {
    parsed.working_dir = config["WorkingDir"].get<std::string>();
  }
  if (config.contains("User") && config["User"].is_string()) {
    parsed.user = config["User"].get<std::string>();
  }
  if (config.contains("StopSignal") && config["StopSignal"].is_string()) {
    parsed.stop_signal = config["StopSignal"].get<std::string>();
  }
  return parsed;
}

absl::StatusOr<std::vector<std::string>> ContainerArgs(const ContainerConfig& config,
                                                       const ImageRuntimeConfig& image) {
  std::vector<std::string> args;
  if (!config.command().empty()) {
    args.assign(config.command().begin(), config.command().end());
    args.insert(args.end(), config.args().begin(), config.args().end());
  } else {
    args = image.entrypoint;
    if (!config.args().empty()) {
      args.insert(args.end(), config.args().begin(), config.args().end());
    } else {
      args.insert(args.end(), image.cmd.begin(), image.cmd.end());
    }
  }
  if (args.empty()) {
    return absl::InvalidArgumentError(
        "no command: the container config has no command or args and the image has no "
        "Entrypoint or Cmd");
  }
  return args;
}

std::vector<std::string> ContainerEnv(const ContainerConfig& config,
                                      const ImageRuntimeConfig& image) {
  std::vector<std::string> env;
  std::map<std::string, size_t> position;
  auto set = [&](const std::string& key, const std::string& entry) {
    auto found = position.find(key);
    if (found != position.end()) {
      env[found->second] = entry;
    } else {
      position[key] = env.size();
      env.push_back(entry);
    }
  };
  for (const std::string& entry : image.env) set(entry.substr(0, entry.find('=')), entry);
  for (const runtime::v1::KeyValue& kv : config.envs()) {
    set(kv.key(), absl::StrCat(kv.key(), "=", kv.value()));
  }
  if (position.count("PATH") == 0) env.insert(env.begin(), kDefaultPath);
  return env;
}

}  // namespace kapal::runtime
