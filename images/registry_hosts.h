#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "images/registry_client.h"

namespace kapal::images {

// How kapal reaches one registry, from kapal.toml's [registries."HOST"].
struct RegistryHostSettings {
  // Tried in order before the registry itself: "http://127.0.0.1:5000", "https://m.example",
  // or a bare "host:port" (plain HTTP on loopback, HTTPS elsewhere).
  std::vector<std::string> mirrors;
  // false: only the mirrors serve this registry (an air-gapped node).
  bool fallback_to_origin = true;
  bool plain_http = false;
  bool skip_verify = false;
  std::string ca_file;
  std::string username;
  std::string password;
  bool operator==(const RegistryHostSettings&) const = default;
};

// Parses a mirror as configured; INVALID_ARGUMENT for anything but http(s)://host[:port] or
// host[:port].
absl::StatusOr<RegistryEndpoint> ParseMirror(const std::string& mirror);

class RegistryHosts {
 public:
  RegistryHosts() = default;
  explicit RegistryHosts(std::map<std::string, RegistryHostSettings> settings)
      : settings_(std::move(settings)) {}

  // Where to fetch DOMAIN's images from, in order: its mirrors, then (unless turned off) the
  // registry itself with its TLS settings.
  std::vector<RegistryEndpoint> EndpointsFor(const std::string& domain) const;
  // The registry itself with its TLS settings, never a mirror: where pushes go.
  RegistryEndpoint OriginFor(const std::string& domain) const;
  // Credentials configured for DOMAIN (empty when none).
  Credentials CredentialsFor(const std::string& domain) const;

 private:
  std::map<std::string, RegistryHostSettings> settings_;
};

}  // namespace kapal::images
