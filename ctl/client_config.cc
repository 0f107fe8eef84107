#include "ctl/client_config.h"

#include <yaml-cpp/yaml.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "base/files.h"

namespace kapal::ctl {

absl::StatusOr<ClientConfig> ParseCrictlYaml(absl::string_view yaml, absl::string_view source,
                                             ClientConfig defaults) {
  ClientConfig config = std::move(defaults);
  YAML::Node root;
  try {
    root = YAML::Load(std::string(yaml));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": not valid YAML: ", e.what()));
  }
  if (root.IsNull()) return config;
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(source, ": expected a mapping of keys"));
  }
  try {
    if (root["runtime-endpoint"])
      config.runtime_endpoint = root["runtime-endpoint"].as<std::string>();
    if (root["image-endpoint"]) config.image_endpoint = root["image-endpoint"].as<std::string>();
    if (root["timeout"]) {
      absl::StatusOr<std::chrono::milliseconds> timeout =
          ParseTimeout(root["timeout"].as<std::string>());
      if (!timeout.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(source, ": key 'timeout': ", timeout.status().message()));
      }
      config.timeout = *timeout;
    }
    if (root["debug"]) config.debug = root["debug"].as<bool>();
    if (root["pull-image-on-create"])
      config.pull_image_on_create = root["pull-image-on-create"].as<bool>();
    if (root["disable-pull-on-run"])
      config.disable_pull_on_run = root["disable-pull-on-run"].as<bool>();
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat(source, ": line ", e.mark.line + 1, ": ", e.msg));
  }
  return config;
}

absl::StatusOr<ClientConfig> LoadCrictlConfig(const std::string& path, bool must_exist,
                                              ClientConfig defaults) {
  absl::StatusOr<std::string> text = base::ReadFile(path);
  if (!text.ok()) {
    if (absl::IsNotFound(text.status()) && !must_exist) return defaults;
    return text.status();
  }
  return ParseCrictlYaml(*text, path, std::move(defaults));
}

absl::StatusOr<std::string> EndpointToTarget(absl::string_view endpoint) {
  absl::string_view path = endpoint;
  if (absl::ConsumePrefix(&path, "unix://")) {
    // unix:///run/x.sock: the path is what follows the authority (empty).
  } else if (absl::ConsumePrefix(&path, "unix:")) {
  } else if (absl::StrContains(endpoint, "://")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "endpoint \"", endpoint, "\": only unix sockets are supported (unix:///path/to.sock)"));
  }
  if (path.empty() || path.front() != '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("endpoint \"", endpoint, "\": expected an absolute socket path"));
  }
  return absl::StrCat("unix://", path);
}

absl::StatusOr<std::chrono::milliseconds> ParseTimeout(absl::string_view text) {
  double value = 0;
  double scale = 1000;  // a bare number is seconds
  absl::string_view number = text;
  if (absl::ConsumeSuffix(&number, "ms")) {
    scale = 1;
  } else if (absl::ConsumeSuffix(&number, "s")) {
    scale = 1000;
  } else if (absl::ConsumeSuffix(&number, "m")) {
    scale = 60 * 1000;
  }
  if (!absl::SimpleAtod(number, &value) || value < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", text, "\" is not a duration (examples: 2s, 500ms, 1m, 10)"));
  }
  return std::chrono::milliseconds(static_cast<long long>(value * scale));
}

}  // namespace kapal::ctl
