#include "runtime/networks.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "base/unique_fd.h"
#include "runtime/cni.h"

#ifndef SIOCBRDELBR
#define SIOCBRDELBR 0x89a1
#endif

namespace kapal::runtime {

namespace {

// Files of networks Create made: sorted after any usual default config ("10-...") so that the
// conf dir's first config stays the default network. (The prefix is from when the Docker door
// kept networks; it stays so their files remain theirs.)
constexpr char kNetworkFilePrefix[] = "zz-kapal-docker-";

struct Subnet {
  uint32_t network = 0;  // host order
  int prefix = 0;
  std::string text;
};

std::optional<Subnet> ParseSubnet(const std::string& text) {
  std::pair<std::string, std::string> parts = absl::StrSplit(text, absl::MaxSplits('/', 1));
  in_addr address{};
  int prefix = 0;
  if (::inet_pton(AF_INET, parts.first.c_str(), &address) != 1 ||
      !absl::SimpleAtoi(parts.second, &prefix) || prefix < 8 || prefix > 30) {
    return std::nullopt;
  }
  uint32_t mask = ~uint32_t{0} << (32 - prefix);
  Subnet subnet;
  subnet.network = ntohl(address.s_addr) & mask;
  subnet.prefix = prefix;
  in_addr normalized{htonl(subnet.network)};
  char buffer[INET_ADDRSTRLEN];
  ::inet_ntop(AF_INET, &normalized, buffer, sizeof buffer);
  subnet.text = absl::StrCat(buffer, "/", prefix);
  return subnet;
}

bool Overlap(const Subnet& a, const Subnet& b) {
  int prefix = std::min(a.prefix, b.prefix);
  uint32_t mask = ~uint32_t{0} << (32 - prefix);
  return (a.network & mask) == (b.network & mask);
}

// The IPv4 subnets (and gateways) a CNI config's IPAM hands out.
std::vector<std::pair<std::string, std::string>> SubnetsOf(const nlohmann::json& config) {
  std::vector<std::pair<std::string, std::string>> found;
  std::function<void(const nlohmann::json&)> walk = [&](const nlohmann::json& node) {
    if (node.is_object()) {
      if (node.contains("subnet") && node["subnet"].is_string()) {
        found.emplace_back(node["subnet"].get<std::string>(), node.value("gateway", ""));
      }
      for (const auto& [key, value] : node.items()) {
        if (key != "subnet") walk(value);
      }
    } else if (node.is_array()) {
      for (const nlohmann::json& item : node) walk(item);
    }
  };
  walk(config);
  return found;
}

std::string BridgeOf(const nlohmann::json& config) {
  for (const nlohmann::json& plugin : config.value("plugins", nlohmann::json::array())) {
    if (plugin.is_object() && plugin.value("type", "") == "bridge") {
      return plugin.value("bridge", "cni0");
    }
  }
  return "";
}

std::string DriverOf(const nlohmann::json& config) {
  nlohmann::json plugins = config.value("plugins", nlohmann::json::array());
  if (plugins.is_array() && !plugins.empty() && plugins[0].is_object()) {
    return plugins[0].value("type", "");
  }
  return config.value("type", "");
}

// A bridge left by the bridge plugin is taken down and deleted with the network (ioctls, as
// brctl does; the plugin never deletes its bridge).
void DeleteBridge(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ) return;
  base::UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!fd) return;
  ifreq request{};
  std::memcpy(request.ifr_name, name.c_str(), name.size() + 1);
  if (::ioctl(fd.Get(), SIOCGIFFLAGS, &request) != 0) return;
  request.ifr_flags = static_cast<short>(request.ifr_flags & ~IFF_UP);
  ::ioctl(fd.Get(), SIOCSIFFLAGS, &request);
  char bridge[IFNAMSIZ] = {};
  std::memcpy(bridge, name.c_str(), name.size() + 1);
  ::ioctl(fd.Get(), SIOCBRDELBR, bridge);
}

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 64 || !absl::ascii_isalnum(name[0])) return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '.' && c != '-') return false;
  }
  return true;
}

}  // namespace

std::vector<Network> Networks::List() const {
  std::vector<Network> networks;
  std::vector<CniConfigFile> files = CniNetwork::ListConfigs(conf_dir_);
  for (size_t i = 0; i < files.size(); ++i) {
    Network network;
    network.name = files[i].name;
    network.path = files[i].path;
    network.config = files[i].config;
    network.is_default = i == 0;
    std::string file = files[i].path.substr(files[i].path.rfind('/') + 1);
    network.created_here = absl::StartsWith(file, kNetworkFilePrefix);
    network.driver = DriverOf(files[i].config);
    network.subnets = SubnetsOf(files[i].config);
    network.bridge = BridgeOf(files[i].config);
    if (files[i].config.contains("kapal.docker") && files[i].config["kapal.docker"].is_object()) {
      network.labels = files[i].config["kapal.docker"].value("labels", nlohmann::json::object());
    }
    networks.push_back(std::move(network));
  }
  return networks;
}

absl::StatusOr<Network> Networks::Get(const std::string& name) const {
  for (Network& network : List()) {
    if (network.name == name) return std::move(network);
  }
  return absl::NotFoundError(absl::StrCat("network ", name, " not found"));
}

absl::StatusOr<Network> Networks::Create(const NetworkRequest& request) {
  const std::string& name = request.name;
  if (!ValidName(name) || name == "host" || name == "none" || name == "bridge") {
    return absl::InvalidArgumentError(absl::StrCat(
        "invalid network name \"", name, "\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"));
  }
  std::vector<Network> existing = List();
  std::vector<Subnet> taken;
  for (const Network& network : existing) {
    if (network.name == name) {
      return absl::AlreadyExistsError(absl::StrCat("network with name ", name, " already exists"));
    }
    // Subnets in use by every config of the conf dir: a new one must overlap none.
    for (const auto& [text, gateway] : network.subnets) {
      if (std::optional<Subnet> subnet = ParseSubnet(text)) taken.push_back(*subnet);
    }
  }
  std::optional<Subnet> subnet;
  std::string gateway = request.gateway;
  if (!request.subnet.empty()) {
    subnet = ParseSubnet(request.subnet);
    if (!subnet.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat("invalid subnet \"", request.subnet,
                                                     "\": an IPv4 CIDR with a prefix of 8 to 30"));
    }
    for (const Subnet& other : taken) {
      if (Overlap(*subnet, other)) {
        return absl::FailedPreconditionError(
            absl::StrCat("Pool overlaps with other one on this address space: ", subnet->text,
                         " and ", other.text));
      }
    }
  } else {
    // As Docker picks from its default pools: the first free /24 of 10.89.0.0/16.
    for (int third = 0; third < 256 && !subnet.has_value(); ++third) {
      std::optional<Subnet> candidate = ParseSubnet(absl::StrCat("10.89.", third, ".0/24"));
      bool free = true;
      for (const Subnet& other : taken) free = free && !Overlap(*candidate, other);
      if (free) subnet = candidate;
    }
    if (!subnet.has_value()) {
      return absl::ResourceExhaustedError("no free subnet left in 10.89.0.0/16");
    }
  }
  // Interface names have at most 15 bytes: "kd-" and a hash of the network's name.
  std::string bridge = absl::StrCat("kd-", absl::Hex(std::hash<std::string>{}(name)&0xffffffffff));
  if (gateway.empty()) {
    // host-local's default, written down so that inspect shows it.
    in_addr first{htonl(subnet->network + 1)};
    char text[INET_ADDRSTRLEN];
    ::inet_ntop(AF_INET, &first, text, sizeof text);
    gateway = text;
  }
  nlohmann::json range = {{"subnet", subnet->text}, {"gateway", gateway}};
  nlohmann::json labels = request.labels.is_object() ? request.labels : nlohmann::json::object();
  nlohmann::json config = {
      {"cniVersion", "1.0.0"},
      {"name", name},
      {"kapal.docker", {{"labels", labels}}},
      {"plugins",
       {{{"type", "bridge"},
         {"bridge", bridge},
         {"isGateway", true},
         {"ipMasq", false},
         {"hairpinMode", true},
         {"ipam",
          {{"type", "host-local"}, {"ranges", {{range}}}, {"routes", {{{"dst", "0.0.0.0/0"}}}}}}},
        {{"type", "portmap"}, {"capabilities", {{"portMappings", true}}}},
        {{"type", "loopback"}}}}};
  std::string path = absl::StrCat(conf_dir_, "/", kNetworkFilePrefix, name, ".conflist");
  if (absl::Status made = base::MakeDirectories(conf_dir_, 0755); !made.ok()) return made;
  if (absl::Status written =
          base::WriteFileAtomically(path, config.dump(2) + "\n", 0644, base::Durability::kSynced);
      !written.ok()) {
    return written;
  }
  logger_.Info("network ", name, " created (", subnet->text, ", ", path, ")");
  Tell("create", name);
  return Get(name);
}

absl::Status Networks::Remove(const std::string& name) {
  absl::StatusOr<Network> network = Get(name);
  if (!network.ok()) return network.status();
  if (network->is_default) {
    return absl::PermissionDeniedError(
        absl::StrCat(name, " is the default network and cannot be removed"));
  }
  if (!network->created_here) {
    return absl::PermissionDeniedError(absl::StrCat("network ", name, " (", network->path,
                                                    ") was not created by kapal; remove its CNI "
                                                    "config by hand"));
  }
  if (::unlink(network->path.c_str()) != 0) {
    return base::ErrnoStatus(errno, "remove " + network->path);
  }
  DeleteBridge(network->bridge);
  // host-local's allocations of the network (none are left: no pod is on it).
  (void)base::RemoveTree("/var/lib/cni/networks/" + name);
  Tell("destroy", name);
  return absl::OkStatus();
}

void Networks::Tell(const std::string& action, const std::string& name) {
  if (journal_ == nullptr) return;
  journal_->Publish("network", action, name, {{"name", name}, {"type", "bridge"}});
}

}  // namespace kapal::runtime
