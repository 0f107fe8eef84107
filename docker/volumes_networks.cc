// The volume and network endpoints of the Docker API. Volumes are directories kept in the
// store (volumes.h); networks are the CNI configs of the conf dir, the default one shown as
// "bridge", and `network create` writes a bridge + host-local + portmap config of its own.

#include <arpa/inet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "base/unique_fd.h"
#include "docker/api_impl.h"
#include "docker/translate.h"
#include "runtime/cni.h"

#ifndef SIOCBRDELBR
#define SIOCBRDELBR 0x89a1
#endif

namespace kapal::docker {

namespace {

// Files of networks made by `docker network create`: sorted after any usual default config
// ("10-...") so that the conf dir's first config stays the default network.
constexpr char kNetworkFilePrefix[] = "zz-kapal-docker-";

nlohmann::json VolumeJson(const runtime::Volume& volume) {
  return {{"Name", volume.name},
          {"Driver", volume.driver},
          {"Mountpoint", volume.mountpoint},
          {"CreatedAt", DockerTime(volume.created_at * 1000000000)},
          {"Labels", volume.labels},
          {"Scope", "local"},
          {"Options", volume.options}};
}

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
  uint32_t mask = prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix);
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

}  // namespace

void Api::Impl::ListVolumes(Responder& responder) {
  absl::StatusOr<std::vector<runtime::Volume>> all = runtime.volumes().List();
  if (!all.ok()) return ReplyError(responder, all.status());
  nlohmann::json list = nlohmann::json::array();
  for (const runtime::Volume& volume : *all) list.push_back(VolumeJson(volume));
  responder.Json(200, {{"Volumes", list}, {"Warnings", nlohmann::json::array()}});
}

void Api::Impl::CreateVolume(const Request& request, Responder& responder) {
  nlohmann::json body =
      nlohmann::json::parse(request.body.empty() ? "{}" : request.body, nullptr, false);
  if (!body.is_object()) return responder.Error(400, "the volume body is not a JSON object");
  std::string name = body.value("Name", std::string());
  if (name.empty()) name = runtime::NewId();
  std::map<std::string, std::string> labels, driver_options;
  for (const char* key : {"Labels", "DriverOpts"}) {
    auto found = body.find(key);
    if (found == body.end() || !found->is_object()) continue;
    for (const auto& [k, v] : found->items()) {
      if (v.is_string()) (std::string(key) == "Labels" ? labels : driver_options)[k] = v;
    }
  }
  absl::StatusOr<runtime::Volume> made =
      runtime.volumes().Create(name, body.value("Driver", std::string()), labels, driver_options);
  if (!made.ok()) return ReplyError(responder, made.status());
  responder.Json(201, VolumeJson(*made));
}

void Api::Impl::InspectVolume(const std::string& name, Responder& responder) {
  absl::StatusOr<runtime::Volume> volume = runtime.volumes().Get(name);
  if (!volume.ok()) {
    if (absl::IsNotFound(volume.status())) {
      return responder.Error(404, absl::StrCat("get ", name, ": no such volume"));
    }
    return ReplyError(responder, volume.status());
  }
  responder.Json(200, VolumeJson(*volume));
}

void Api::Impl::RemoveVolume(const std::string& name, const Request& request,
                             Responder& responder) {
  absl::Status removed = runtime.RemoveVolume(name);
  if (absl::IsNotFound(removed)) {
    if (request.QueryFlag("force")) return responder.Empty(204);
    return responder.Error(404, absl::StrCat("get ", name, ": no such volume"));
  }
  if (!removed.ok()) return ReplyError(responder, removed);
  responder.Empty(204);
}

void Api::Impl::PruneVolumes(Responder& responder) {
  absl::StatusOr<std::vector<runtime::Volume>> all = runtime.volumes().List();
  if (!all.ok()) return ReplyError(responder, all.status());
  nlohmann::json deleted = nlohmann::json::array();
  int64_t reclaimed = 0;
  for (const runtime::Volume& volume : *all) {
    base::TreeUsage usage = base::MeasureTree(volume.mountpoint);
    if (!runtime.RemoveVolume(volume.name).ok()) continue;  // in use
    reclaimed += usage.bytes;
    deleted.push_back(volume.name);
  }
  responder.Json(200, {{"VolumesDeleted", deleted}, {"SpaceReclaimed", reclaimed}});
}

namespace {

struct NetworkView {
  std::string name;  // as Docker shows it ("bridge" for the default)
  std::string cni_name;
  std::string path;
  nlohmann::json config;
  bool builtin = false;  // host, none
};

}  // namespace

bool Api::Impl::NetworkExists(const std::string& name) {
  for (const runtime::CniConfigFile& file :
       runtime::CniNetwork::ListConfigs(options.cni_conf_dir)) {
    if (file.name == name) return true;
  }
  return false;
}

namespace {

std::vector<NetworkView> NetworkViews(const std::string& conf_dir) {
  std::vector<NetworkView> views;
  std::vector<runtime::CniConfigFile> files = runtime::CniNetwork::ListConfigs(conf_dir);
  for (size_t i = 0; i < files.size(); ++i) {
    views.push_back(
        {i == 0 ? "bridge" : files[i].name, files[i].name, files[i].path, files[i].config, false});
  }
  views.push_back({"host", "host", "", nlohmann::json::object(), true});
  views.push_back({"none", "none", "", nlohmann::json::object(), true});
  return views;
}

// The network (CNI name, "host", "none" or "" for the default) a Docker container is on.
std::string NetworkOfContainer(const DockerContainer& found) {
  std::string mode =
      found.create.value("HostConfig", nlohmann::json::object()).value("NetworkMode", "");
  if (mode.empty() || mode == "default" || mode == "bridge") return "";
  return mode;
}

}  // namespace

namespace {

nlohmann::json NetworkJson(const NetworkView& view, const std::vector<DockerContainer>& containers,
                           bool is_default) {
  nlohmann::json ipam_config = nlohmann::json::array();
  for (const auto& [subnet, gateway] : SubnetsOf(view.config)) {
    nlohmann::json item = {{"Subnet", subnet}};
    if (!gateway.empty()) item["Gateway"] = gateway;
    ipam_config.push_back(item);
  }
  nlohmann::json attached = nlohmann::json::object();
  for (const DockerContainer& found : containers) {
    std::string network = NetworkOfContainer(found);
    bool on_it = view.builtin ? network == view.name
                              : (is_default ? network.empty() : network == view.cni_name);
    if (!on_it) continue;
    std::string ip = found.pod.has_value() && !found.pod->ips.empty() ? found.pod->ips.front() : "";
    std::string prefix;
    for (const auto& [subnet, gateway] : SubnetsOf(view.config)) {
      prefix = subnet.substr(subnet.find('/'));
      break;
    }
    attached[found.container.id] = {{"Name", found.name},
                                    {"EndpointID", found.container.pod_id},
                                    {"MacAddress", ""},
                                    {"IPv4Address", ip.empty() ? "" : ip + prefix},
                                    {"IPv6Address", ""}};
  }
  nlohmann::json labels = nlohmann::json::object();
  if (view.config.contains("kapal.docker") && view.config["kapal.docker"].is_object()) {
    labels = view.config["kapal.docker"].value("labels", nlohmann::json::object());
  }
  return {{"Name", view.name},
          {"Id", view.name},
          {"Created", DockerTime(0)},
          {"Scope", "local"},
          {"Driver", view.builtin ? view.name : DriverOf(view.config)},
          {"EnableIPv6", false},
          {"IPAM", {{"Driver", "default"}, {"Options", nullptr}, {"Config", ipam_config}}},
          {"Internal", false},
          {"Attachable", false},
          {"Ingress", false},
          {"ConfigFrom", {{"Network", ""}}},
          {"ConfigOnly", false},
          {"Containers", attached},
          {"Options", view.path.empty() ? nlohmann::json::object()
                                        : nlohmann::json{{"io.kapal.cni.file", view.path}}},
          {"Labels", labels}};
}

}  // namespace

void Api::Impl::ListNetworks(Responder& responder) {
  std::vector<DockerContainer> containers = Containers();
  nlohmann::json list = nlohmann::json::array();
  std::vector<NetworkView> views = NetworkViews(options.cni_conf_dir);
  for (size_t i = 0; i < views.size(); ++i) {
    list.push_back(NetworkJson(views[i], containers, i == 0 && !views[i].builtin));
  }
  responder.Json(200, list);
}

void Api::Impl::InspectNetwork(const std::string& name, Responder& responder) {
  std::vector<NetworkView> views = NetworkViews(options.cni_conf_dir);
  for (size_t i = 0; i < views.size(); ++i) {
    if (views[i].name == name || views[i].cni_name == name) {
      return responder.Json(200, NetworkJson(views[i], Containers(), i == 0 && !views[i].builtin));
    }
  }
  responder.Error(404, absl::StrCat("network ", name, " not found"));
}

void Api::Impl::CreateNetwork(const Request& request, Responder& responder) {
  nlohmann::json body = nlohmann::json::parse(request.body, nullptr, false);
  if (!body.is_object()) return responder.Error(400, "the network body is not a JSON object");
  std::string name = body.value("Name", std::string());
  absl::StatusOr<std::string> checked = CheckContainerName(name);
  if (!checked.ok() || name.size() > 64) {
    return responder.Error(400, absl::StrCat("invalid network name \"", name,
                                             "\": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"));
  }
  std::string driver = body.value("Driver", std::string("bridge"));
  if (driver != "bridge" && !driver.empty()) {
    return responder.Error(
        400, absl::StrCat("network driver \"", driver, "\" is not supported by kapal (bridge is)"));
  }
  for (const NetworkView& view : NetworkViews(options.cni_conf_dir)) {
    if (view.name == name || view.cni_name == name) {
      return responder.Error(409, absl::StrCat("network with name ", name, " already exists"));
    }
  }
  // Subnets in use by every config of the conf dir: a new one must overlap none.
  std::vector<Subnet> taken;
  for (const runtime::CniConfigFile& file :
       runtime::CniNetwork::ListConfigs(options.cni_conf_dir)) {
    for (const auto& [text, gateway] : SubnetsOf(file.config)) {
      if (std::optional<Subnet> subnet = ParseSubnet(text)) taken.push_back(*subnet);
    }
  }
  std::string gateway;
  std::optional<Subnet> subnet;
  nlohmann::json ipam_config =
      body.value("IPAM", nlohmann::json::object()).value("Config", nlohmann::json::array());
  if (ipam_config.is_array() && !ipam_config.empty() && ipam_config[0].is_object()) {
    std::string text = ipam_config[0].value("Subnet", std::string());
    gateway = ipam_config[0].value("Gateway", std::string());
    if (!text.empty()) {
      subnet = ParseSubnet(text);
      if (!subnet.has_value()) {
        return responder.Error(400, absl::StrCat("invalid subnet \"", text,
                                                 "\": an IPv4 CIDR with a prefix of 8 to 30"));
      }
      for (const Subnet& other : taken) {
        if (Overlap(*subnet, other)) {
          return responder.Error(403, absl::StrCat("Pool overlaps with other one on this address "
                                                   "space: ",
                                                   subnet->text, " and ", other.text));
        }
      }
    }
  }
  if (!subnet.has_value()) {
    // As Docker picks from its default pools: the first free /24 of 10.89.0.0/16.
    for (int third = 0; third < 256 && !subnet.has_value(); ++third) {
      std::optional<Subnet> candidate = ParseSubnet(absl::StrCat("10.89.", third, ".0/24"));
      bool free = true;
      for (const Subnet& other : taken) free = free && !Overlap(*candidate, other);
      if (free) subnet = candidate;
    }
    if (!subnet.has_value()) return responder.Error(409, "no free subnet left in 10.89.0.0/16");
  }
  // Interface names have at most 15 bytes: "kd-" and a hash of the network's name.
  std::string bridge = absl::StrCat("kd-", absl::Hex(std::hash<std::string>{}(name)&0xffffffffff));
  if (gateway.empty()) {
    // host-local's default, written down so that inspect shows it as Docker does.
    in_addr first{htonl(subnet->network + 1)};
    char text[INET_ADDRSTRLEN];
    ::inet_ntop(AF_INET, &first, text, sizeof text);
    gateway = text;
  }
  nlohmann::json range = {{"subnet", subnet->text}, {"gateway", gateway}};
  nlohmann::json labels = body.value("Labels", nlohmann::json::object());
  if (!labels.is_object()) labels = nlohmann::json::object();
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
  std::string path = absl::StrCat(options.cni_conf_dir, "/", kNetworkFilePrefix, name, ".conflist");
  if (absl::Status made = base::MakeDirectories(options.cni_conf_dir, 0755); !made.ok()) {
    return ReplyError(responder, made);
  }
  if (absl::Status written =
          base::WriteFileAtomically(path, config.dump(2) + "\n", 0644, base::Durability::kSynced);
      !written.ok()) {
    return ReplyError(responder, written);
  }
  logger.Info("docker: network ", name, " created (", subnet->text, ", ", path, ")");
  Tell("network", "create", name, {{"name", name}, {"type", "bridge"}});
  responder.Json(201, {{"Id", name}, {"Warning", ""}});
}

namespace {

// Removes a network the Docker API created (its CNI config, bridge and IPAM state), unless a
// container is on it. PERMISSION_DENIED for the predefined ones and CNI configs of others;
// FAILED_PRECONDITION while in use.
absl::Status RemoveNetworkView(const NetworkView& view, bool is_default,
                               const std::vector<DockerContainer>& containers) {
  if (view.builtin || is_default) {
    return absl::PermissionDeniedError(
        absl::StrCat(view.name, " is a pre-defined network and cannot be removed"));
  }
  std::string file = view.path.substr(view.path.rfind('/') + 1);
  if (!absl::StartsWith(file, kNetworkFilePrefix)) {
    return absl::PermissionDeniedError(
        absl::StrCat("network ", view.name, " (", view.path,
                     ") was not created by the Docker API; remove its CNI config by hand"));
  }
  for (const DockerContainer& found : containers) {
    if (NetworkOfContainer(found) == view.cni_name) {
      return absl::FailedPreconditionError(
          absl::StrCat("error while removing network: network ", view.name, " id ", view.name,
                       " has active endpoints (container ", found.name, ")"));
    }
  }
  if (::unlink(view.path.c_str()) != 0) {
    return base::ErrnoStatus(errno, "remove " + view.path);
  }
  DeleteBridge(BridgeOf(view.config));
  // host-local's allocations of the network (none are left: no container is on it).
  (void)base::RemoveTree("/var/lib/cni/networks/" + view.cni_name);
  return absl::OkStatus();
}

}  // namespace

void Api::Impl::RemoveNetwork(const std::string& name, Responder& responder) {
  std::vector<NetworkView> views = NetworkViews(options.cni_conf_dir);
  for (size_t i = 0; i < views.size(); ++i) {
    if (views[i].name != name && views[i].cni_name != name) continue;
    absl::Status removed = RemoveNetworkView(views[i], i == 0, Containers());
    if (absl::IsPermissionDenied(removed) || absl::IsFailedPrecondition(removed)) {
      return responder.Error(403, std::string(removed.message()));
    }
    if (!removed.ok()) return ReplyError(responder, removed);
    Tell("network", "destroy", views[i].name, {{"name", views[i].name}, {"type", "bridge"}});
    return responder.Empty(204);
  }
  responder.Error(404, absl::StrCat("network ", name, " not found"));
}

void Api::Impl::PruneNetworks(Responder& responder) {
  std::vector<NetworkView> views = NetworkViews(options.cni_conf_dir);
  std::vector<DockerContainer> containers = Containers();
  nlohmann::json deleted = nlohmann::json::array();
  for (size_t i = 0; i < views.size(); ++i) {
    if (RemoveNetworkView(views[i], i == 0, containers).ok()) {
      deleted.push_back(views[i].name);
      Tell("network", "destroy", views[i].name, {{"name", views[i].name}, {"type", "bridge"}});
    }
  }
  responder.Json(200, {{"NetworksDeleted", deleted}});
}

}  // namespace kapal::docker
