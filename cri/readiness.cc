#include "cri/readiness.h"

#include <dirent.h>

#include <algorithm>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/files.h"
#include "nlohmann/json.hpp"

namespace kapal::cri {

namespace {

constexpr char kNetworkNotReady[] = "NetworkPluginNotReady";

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
  // libcni loads the files in lexical order and uses the first.
  std::sort(names.begin(), names.end());
  return names;
}

// The plugin types a network config file calls, or an error saying what is wrong with it.
absl::StatusOr<std::vector<std::string>> PluginTypes(const std::string& path) {
  absl::StatusOr<std::string> text = base::ReadFile(path);
  if (!text.ok()) return text.status();
  nlohmann::json config = nlohmann::json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (config.is_discarded() || !config.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a JSON object"));
  }
  if (!config.contains("name") || !config["name"].is_string()) {
    return absl::InvalidArgumentError(absl::StrCat(path, " has no \"name\""));
  }
  std::vector<std::string> types;
  if (absl::EndsWith(path, ".conflist")) {
    if (!config.contains("plugins") || !config["plugins"].is_array() || config["plugins"].empty()) {
      return absl::InvalidArgumentError(absl::StrCat(path, " has no \"plugins\" list"));
    }
    for (const auto& plugin : config["plugins"]) {
      if (!plugin.is_object() || !plugin.contains("type") || !plugin["type"].is_string()) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": a plugin has no \"type\""));
      }
      types.push_back(plugin["type"].get<std::string>());
    }
  } else {
    if (!config.contains("type") || !config["type"].is_string()) {
      return absl::InvalidArgumentError(absl::StrCat(path, " has no \"type\""));
    }
    types.push_back(config["type"].get<std::string>());
  }
  return types;
}

}  // namespace

Condition CheckRuntimeReady(const Config& config) {
  const RuntimeHandler& handler = config.runtimes.at(config.default_runtime);
  absl::StatusOr<std::string> binary = base::FindExecutable(handler.binary);
  if (!binary.ok()) {
    return {false, "OCIRuntimeNotFound",
            absl::StrCat("OCI runtime of the default handler \"", config.default_runtime,
                         "\": ", binary.status().message(), "; install it or set runtime.handlers.",
                         config.default_runtime, ".binary")};
  }
  return {true, "", ""};
}

Condition CheckNetworkReady(const Config& config) {
  std::vector<std::string> files = NetworkConfigFiles(config.cni_conf_dir);
  if (files.empty()) {
    return {
        false, kNetworkNotReady,
        absl::StrCat("cni config uninitialized: no network config (.conf, .conflist, .json) in ",
                     config.cni_conf_dir)};
  }
  std::string path = absl::StrCat(config.cni_conf_dir, "/", files.front());
  absl::StatusOr<std::vector<std::string>> types = PluginTypes(path);
  if (!types.ok()) {
    return {false, kNetworkNotReady,
            absl::StrCat("cni config invalid: ", types.status().message())};
  }
  for (const std::string& type : *types) {
    // A type is a file name in bin_dirs; a path would let a config run any binary on the host.
    if (type.empty() || type.find('/') != std::string::npos || type == "." || type == "..") {
      return {false, kNetworkNotReady,
              absl::StrCat("cni config invalid: ", path, ": plugin type \"", type,
                           "\" is not a plain file name")};
    }
    bool found = false;
    for (const std::string& dir : config.cni_bin_dirs) {
      if (base::FindExecutable(absl::StrCat(dir, "/", type)).ok()) {
        found = true;
        break;
      }
    }
    if (!found) {
      return {false, kNetworkNotReady,
              absl::StrCat("cni plugin \"", type, "\" named by ", path, " is not in ",
                           absl::StrJoin(config.cni_bin_dirs, " or "))};
    }
  }
  return {true, "", ""};
}

}  // namespace kapal::cri
