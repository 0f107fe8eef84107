#pragma once

#include <chrono>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kapal::ctl {

inline constexpr const char kDefaultEndpoint[] = "unix:///run/kapal/kapal.sock";
inline constexpr const char kDefaultCrictlConfig[] = "/etc/crictl.yaml";

// What crictl reads from /etc/crictl.yaml (same keys), overridden by environment and flags.
struct ClientConfig {
  std::string runtime_endpoint = kDefaultEndpoint;
  // Empty: the runtime endpoint serves images too.
  std::string image_endpoint;
  std::chrono::milliseconds timeout = std::chrono::seconds(2);
  bool debug = false;
  bool pull_image_on_create = false;
  bool disable_pull_on_run = false;
};

// Parses crictl.yaml text onto DEFAULTS. Keys crictl does not know are ignored, as crictl does.
absl::StatusOr<ClientConfig> ParseCrictlYaml(absl::string_view yaml, absl::string_view source,
                                             ClientConfig defaults = {});

// Reads PATH; a missing file gives DEFAULTS unless MUST_EXIST (an explicit --config).
absl::StatusOr<ClientConfig> LoadCrictlConfig(const std::string& path, bool must_exist,
                                              ClientConfig defaults = {});

// "unix:///run/kapal/kapal.sock", "unix:/path" or a bare "/path" → the gRPC target
// "unix:///path". Other schemes are rejected: kapal serves only a local socket.
absl::StatusOr<std::string> EndpointToTarget(absl::string_view endpoint);

// crictl's durations: "2s", "500ms", "1m", or a bare number of seconds.
absl::StatusOr<std::chrono::milliseconds> ParseTimeout(absl::string_view text);

}  // namespace kapal::ctl
