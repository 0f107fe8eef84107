#include "images/registry_hosts.h"

#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace kapal::images {

absl::StatusOr<RegistryEndpoint> ParseMirror(const std::string& mirror) {
  std::string host = mirror;
  std::optional<bool> plain_http;
  if (absl::StartsWith(host, "http://")) {
    plain_http = true;
    host = host.substr(7);
  } else if (absl::StartsWith(host, "https://")) {
    plain_http = false;
    host = host.substr(8);
  } else if (absl::StrContains(host, "://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("mirror \"", mirror, "\": only http:// and https:// are supported"));
  }
  while (absl::EndsWith(host, "/")) host.pop_back();
  if (host.empty() || absl::StrContains(host, "/") || absl::StrContains(host, " ")) {
    return absl::InvalidArgumentError(
        absl::StrCat("mirror \"", mirror, "\": expected http(s)://HOST[:PORT] or HOST[:PORT]"));
  }
  RegistryEndpoint endpoint = DefaultEndpoint(host);
  if (plain_http) endpoint.plain_http = *plain_http;
  return endpoint;
}

std::vector<RegistryEndpoint> RegistryHosts::EndpointsFor(const std::string& domain) const {
  std::vector<RegistryEndpoint> endpoints;
  RegistryEndpoint origin = DefaultEndpoint(domain);
  auto found = settings_.find(domain);
  if (found == settings_.end()) return {origin};
  const RegistryHostSettings& settings = found->second;
  for (const std::string& mirror : settings.mirrors) {
    // Mirrors were checked when the configuration was read.
    if (absl::StatusOr<RegistryEndpoint> endpoint = ParseMirror(mirror); endpoint.ok()) {
      endpoint->skip_verify = settings.skip_verify;
      endpoint->ca_file = settings.ca_file;
      endpoints.push_back(*endpoint);
    }
  }
  if (settings.fallback_to_origin || endpoints.empty()) endpoints.push_back(OriginFor(domain));
  return endpoints;
}

RegistryEndpoint RegistryHosts::OriginFor(const std::string& domain) const {
  RegistryEndpoint origin = DefaultEndpoint(domain);
  auto found = settings_.find(domain);
  if (found == settings_.end()) return origin;
  origin.plain_http = origin.plain_http || found->second.plain_http;
  origin.skip_verify = found->second.skip_verify;
  origin.ca_file = found->second.ca_file;
  return origin;
}

Credentials RegistryHosts::CredentialsFor(const std::string& domain) const {
  Credentials credentials;
  if (auto found = settings_.find(domain); found != settings_.end()) {
    credentials.username = found->second.username;
    credentials.password = found->second.password;
  }
  return credentials;
}

}  // namespace kapal::images
