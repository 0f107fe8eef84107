// Disk usage and clean-up: GET /system/df, POST /containers/prune, /images/prune, /build/prune,
// /networks/prune (volumes_networks.cc) — what `docker system df` and `docker system prune`
// call.

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "docker/api_impl.h"

namespace kapal::docker {

namespace {

// The filters parameter's values for KEY ({"dangling": ["false"]} or {"dangling": {"false":
// true}}, both forms Docker clients send).
std::vector<std::string> FilterValues(const Request& request, const std::string& key) {
  std::vector<std::string> values;
  nlohmann::json filters = nlohmann::json::parse(request.Query("filters", "{}"), nullptr, false);
  if (!filters.is_object() || !filters.contains(key)) return values;
  const nlohmann::json& given = filters[key];
  if (given.is_array()) {
    for (const nlohmann::json& item : given) {
      if (item.is_string()) values.push_back(item.get<std::string>());
    }
  } else if (given.is_object()) {
    for (const auto& [value, on] : given.items()) {
      if (on.is_boolean() && on.get<bool>()) values.push_back(value);
    }
  }
  return values;
}

}  // namespace

void Api::Impl::SystemDf(Responder& responder) {
  std::vector<DockerContainer> containers = Containers();
  std::map<std::string, int> users;
  for (const runtime::Container& c : runtime.ListContainers()) ++users[c.image_id];
  nlohmann::json image_list = nlohmann::json::array();
  int64_t layers_size = 0;
  for (const images::ImageRecord& image : runtime.images().List()) {
    layers_size += image.size;
    image_list.push_back({{"Id", image.id.String()},
                          {"ParentId", ""},
                          {"RepoTags", image.repo_tags},
                          {"RepoDigests", image.repo_digests},
                          {"Created", image.created_at / 1000000000},
                          {"Size", image.size},
                          {"SharedSize", 0},
                          {"VirtualSize", image.size},
                          {"Labels", nullptr},
                          {"Containers", users[image.id.String()]}});
  }
  nlohmann::json container_list = nlohmann::json::array();
  for (const DockerContainer& found : containers) {
    nlohmann::json summary = ContainerSummary(found);
    absl::StatusOr<runtime::v1::ContainerStats> stats = runtime.ContainerStats(found.container.id);
    int64_t writable =
        stats.ok() ? static_cast<int64_t>(stats->writable_layer().used_bytes().value()) : 0;
    summary["SizeRw"] = writable;
    summary["SizeRootFs"] = writable;
    container_list.push_back(summary);
  }
  nlohmann::json volume_list = nlohmann::json::array();
  if (absl::StatusOr<std::vector<runtime::Volume>> all = runtime.volumes().List(); all.ok()) {
    for (const runtime::Volume& volume : *all) {
      base::TreeUsage usage = base::MeasureTree(volume.mountpoint);
      volume_list.push_back(
          {{"Name", volume.name},
           {"Driver", volume.driver},
           {"Mountpoint", volume.mountpoint},
           {"Labels", volume.labels},
           {"Scope", "local"},
           {"Options", volume.options},
           {"UsageData",
            {{"Size", usage.bytes},
             {"RefCount", static_cast<int64_t>(runtime.VolumeUsers(volume.name).size())}}}});
    }
  }
  responder.Json(200, {{"LayersSize", layers_size},
                       {"Images", image_list},
                       {"Containers", container_list},
                       {"Volumes", volume_list},
                       {"BuildCache", nlohmann::json::array()}});
}

void Api::Impl::PruneContainers(Responder& responder) {
  nlohmann::json deleted = nlohmann::json::array();
  int64_t reclaimed = 0;
  for (const DockerContainer& found : Containers()) {
    if (found.container.state == runtime::v1::CONTAINER_RUNNING) continue;
    absl::StatusOr<runtime::v1::ContainerStats> stats = runtime.ContainerStats(found.container.id);
    int64_t size =
        stats.ok() ? static_cast<int64_t>(stats->writable_layer().used_bytes().value()) : 0;
    if (!RemoveContainerAndPod(found).ok()) continue;
    reclaimed += size;
    deleted.push_back(found.container.id);
  }
  responder.Json(200, {{"ContainersDeleted", deleted}, {"SpaceReclaimed", reclaimed}});
}

// Removes unused images: untagged ones only (dangling), or every one no container uses
// (-a: filters dangling=false). Build steps' intermediate images are the build cache's: they go
// with `docker builder prune`, and with -a.
void Api::Impl::PruneImages(const Request& request, Responder& responder) {
  std::vector<std::string> dangling = FilterValues(request, "dangling");
  bool all = !dangling.empty() && (dangling[0] == "false" || dangling[0] == "0");
  std::set<std::string> in_use;
  for (const runtime::Container& c : runtime.ListContainers()) in_use.insert(c.image_id);
  std::set<std::string> intermediate = builder.IntermediateImages();
  nlohmann::json deleted = nlohmann::json::array();
  int64_t reclaimed = 0;
  for (const images::ImageRecord& image : runtime.images().List()) {
    std::string id = image.id.String();
    if (in_use.count(id) != 0) continue;
    if (!all && (!image.repo_tags.empty() || intermediate.count(id) != 0)) continue;
    if (!runtime.images().Remove(id).ok()) continue;
    for (const std::string& tag : image.repo_tags) {
      deleted.push_back({{"Untagged", FamiliarReference(tag)}});
    }
    deleted.push_back({{"Deleted", id}});
    reclaimed += image.size;
  }
  responder.Json(200, {{"ImagesDeleted", deleted}, {"SpaceReclaimed", reclaimed}});
}

void Api::Impl::PruneBuildCache(Responder& responder) {
  std::set<std::string> in_use;
  for (const runtime::Container& c : runtime.ListContainers()) in_use.insert(c.image_id);
  nlohmann::json deleted = nlohmann::json::array();
  int64_t reclaimed = 0;
  std::set<std::string> intermediate = builder.IntermediateImages();
  for (const images::ImageRecord& image : runtime.images().List()) {
    std::string id = image.id.String();
    if (!image.repo_tags.empty() || in_use.count(id) != 0 || intermediate.count(id) == 0) continue;
    if (!runtime.images().Remove(id).ok()) continue;
    deleted.push_back(id);
    reclaimed += image.size;
  }
  responder.Json(200, {{"CachesDeleted", deleted}, {"SpaceReclaimed", reclaimed}});
}

}  // namespace kapal::docker
