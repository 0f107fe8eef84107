// The volume and network endpoints of the Docker API, over the core's node objects
// (runtime/volumes.h, runtime/networks.h): the default network is shown as "bridge", host and
// none are built in.

#include "absl/strings/str_cat.h"
#include "base/files.h"
#include "docker/api_impl.h"

namespace kapal::docker {

namespace {

nlohmann::json VolumeJson(const runtime::Volume& volume) {
  return {{"Name", volume.name},
          {"Driver", volume.driver},
          {"Mountpoint", volume.mountpoint},
          {"CreatedAt", DockerTime(volume.created_at * 1000000000)},
          {"Labels", volume.labels},
          {"Scope", "local"},
          {"Options", volume.options}};
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

// A network as Docker shows it: the default CNI config is "bridge"; host and none are built in.
struct NetworkView {
  std::string name;
  runtime::Network network;
  bool builtin = false;
};

std::vector<NetworkView> NetworkViews(runtime::Runtime& runtime) {
  std::vector<NetworkView> views;
  for (runtime::Network& network : runtime.networks().List()) {
    std::string name = network.is_default ? "bridge" : network.name;
    views.push_back({name, std::move(network), false});
  }
  for (const char* builtin : {"host", "none"}) {
    runtime::Network network;
    network.name = builtin;
    network.driver = builtin;
    views.push_back({builtin, std::move(network), true});
  }
  return views;
}

// The network (CNI name, "host", "none" or "" for the default) a Docker container is on.
std::string NetworkOfContainer(const DockerContainer& found) {
  std::string mode =
      found.create.value("HostConfig", nlohmann::json::object()).value("NetworkMode", "");
  if (mode.empty() || mode == "default" || mode == "bridge") return "";
  return mode;
}

nlohmann::json NetworkJson(const NetworkView& view,
                           const std::vector<DockerContainer>& containers) {
  const runtime::Network& network = view.network;
  nlohmann::json ipam_config = nlohmann::json::array();
  for (const auto& [subnet, gateway] : network.subnets) {
    nlohmann::json item = {{"Subnet", subnet}};
    if (!gateway.empty()) item["Gateway"] = gateway;
    ipam_config.push_back(item);
  }
  std::string prefix;
  if (!network.subnets.empty()) {
    const std::string& subnet = network.subnets.front().first;
    prefix = subnet.substr(subnet.find('/'));
  }
  nlohmann::json attached = nlohmann::json::object();
  for (const DockerContainer& found : containers) {
    std::string on = NetworkOfContainer(found);
    bool on_it =
        view.builtin ? on == view.name : (network.is_default ? on.empty() : on == network.name);
    if (!on_it) continue;
    std::string ip = found.pod.has_value() && !found.pod->ips.empty() ? found.pod->ips.front() : "";
    attached[found.container.id] = {{"Name", found.name},
                                    {"EndpointID", found.container.pod_id},
                                    {"MacAddress", ""},
                                    {"IPv4Address", ip.empty() ? "" : ip + prefix},
                                    {"IPv6Address", ""}};
  }
  return {{"Name", view.name},
          {"Id", view.name},
          {"Created", DockerTime(0)},
          {"Scope", "local"},
          {"Driver", network.driver},
          {"EnableIPv6", false},
          {"IPAM", {{"Driver", "default"}, {"Options", nullptr}, {"Config", ipam_config}}},
          {"Internal", false},
          {"Attachable", false},
          {"Ingress", false},
          {"ConfigFrom", {{"Network", ""}}},
          {"ConfigOnly", false},
          {"Containers", attached},
          {"Options", network.path.empty() ? nlohmann::json::object()
                                           : nlohmann::json{{"io.kapal.cni.file", network.path}}},
          {"Labels", network.labels}};
}

// Docker's codes for a network that cannot go: 403 for a pre-defined one or one in use.
void ReplyNetworkError(Responder& responder, const absl::Status& status) {
  if (absl::IsPermissionDenied(status) || absl::IsFailedPrecondition(status)) {
    return responder.Error(403, std::string(status.message()));
  }
  if (absl::IsResourceExhausted(status)) return responder.Error(409, std::string(status.message()));
  ReplyError(responder, status);
}

}  // namespace

bool Api::Impl::NetworkExists(const std::string& name) { return runtime.networks().Get(name).ok(); }

void Api::Impl::ListNetworks(Responder& responder) {
  std::vector<DockerContainer> containers = Containers();
  nlohmann::json list = nlohmann::json::array();
  for (const NetworkView& view : NetworkViews(runtime)) {
    list.push_back(NetworkJson(view, containers));
  }
  responder.Json(200, list);
}

void Api::Impl::InspectNetwork(const std::string& name, Responder& responder) {
  for (const NetworkView& view : NetworkViews(runtime)) {
    if (view.name == name || view.network.name == name) {
      return responder.Json(200, NetworkJson(view, Containers()));
    }
  }
  responder.Error(404, absl::StrCat("network ", name, " not found"));
}

void Api::Impl::CreateNetwork(const Request& request, Responder& responder) {
  nlohmann::json body = nlohmann::json::parse(request.body, nullptr, false);
  if (!body.is_object()) return responder.Error(400, "the network body is not a JSON object");
  std::string driver = body.value("Driver", std::string("bridge"));
  if (driver != "bridge" && !driver.empty()) {
    return responder.Error(
        400, absl::StrCat("network driver \"", driver, "\" is not supported by kapal (bridge is)"));
  }
  runtime::NetworkRequest wanted;
  wanted.name = body.value("Name", std::string());
  nlohmann::json ipam_config =
      body.value("IPAM", nlohmann::json::object()).value("Config", nlohmann::json::array());
  if (ipam_config.is_array() && !ipam_config.empty() && ipam_config[0].is_object()) {
    wanted.subnet = ipam_config[0].value("Subnet", std::string());
    wanted.gateway = ipam_config[0].value("Gateway", std::string());
  }
  wanted.labels = body.value("Labels", nlohmann::json::object());
  absl::StatusOr<runtime::Network> made = runtime.networks().Create(wanted);
  if (!made.ok()) return ReplyNetworkError(responder, made.status());
  responder.Json(201, {{"Id", made->name}, {"Warning", ""}});
}

void Api::Impl::RemoveNetwork(const std::string& name, Responder& responder) {
  for (const NetworkView& view : NetworkViews(runtime)) {
    if (view.name != name && view.network.name != name) continue;
    if (view.builtin || view.network.is_default) {
      return responder.Error(
          403, absl::StrCat(view.name, " is a pre-defined network and cannot be removed"));
    }
    absl::Status removed = runtime.RemoveNetwork(view.network.name);
    if (!removed.ok()) return ReplyNetworkError(responder, removed);
    return responder.Empty(204);
  }
  responder.Error(404, absl::StrCat("network ", name, " not found"));
}

void Api::Impl::PruneNetworks(Responder& responder) {
  nlohmann::json deleted = nlohmann::json::array();
  for (const runtime::Network& network : runtime.networks().List()) {
    if (network.is_default || !network.created_here) continue;
    if (runtime.RemoveNetwork(network.name).ok()) deleted.push_back(network.name);
  }
  responder.Json(200, {{"NetworksDeleted", deleted}});
}

}  // namespace kapal::docker
