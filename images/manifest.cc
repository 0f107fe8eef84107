#include "images/manifest.h"

#include <sys/utsname.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "nlohmann/json.hpp"

namespace kapal::images {

namespace {

using nlohmann::json;

absl::StatusOr<json> ParseObject(const std::string& body, const char* what) {
  json parsed = json::parse(body, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " is not a JSON object"));
  }
  return parsed;
}

std::string StringField(const json& object, const char* key) {
  auto found = object.find(key);
  return found != object.end() && found->is_string() ? found->get<std::string>() : "";
}

absl::StatusOr<Descriptor> ParseDescriptor(const json& object, const char* what) {
  if (!object.is_object()) return absl::InvalidArgumentError(absl::StrCat(what, ": not an object"));
  absl::StatusOr<Digest> digest = Digest::Parse(StringField(object, "digest"));
  if (!digest.ok())
    return absl::InvalidArgumentError(absl::StrCat(what, ": ", digest.status().message()));
  auto size = object.find("size");
  if (size == object.end() || !size->is_number_integer() || size->get<int64_t>() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(what, " ", digest->String(), ": no valid size"));
  }
  Descriptor descriptor{StringField(object, "mediaType"), *digest, size->get<int64_t>(),
                        std::nullopt};
  if (auto platform = object.find("platform"); platform != object.end() && platform->is_object()) {
    descriptor.platform =
        Platform{StringField(*platform, "os"), StringField(*platform, "architecture"),
                 StringField(*platform, "variant")};
  }
  return descriptor;
}

std::string NormalizeArchitecture(const std::string& architecture) {
  if (architecture == "x86_64" || architecture == "x86-64") return "amd64";
  if (architecture == "aarch64") return "arm64";
  return architecture;
}

std::string EffectiveVariant(const Platform& platform) {
  if (platform.architecture == "arm64" && platform.variant.empty()) return "v8";
  return platform.variant;
}

}  // namespace

std::string Platform::String() const {
  std::string out = absl::StrCat(os, "/", architecture);
  if (!variant.empty()) absl::StrAppend(&out, "/", variant);
  return out;
}

Platform HostPlatform() {
  struct utsname names {};
  ::uname(&names);
  Platform platform{"linux", NormalizeArchitecture(names.machine), ""};
  if (platform.architecture == "arm64") platform.variant = "v8";
  return platform;
}

bool IsIndex(const std::string& media_type, const std::string& body) {
  if (media_type == media_type::kOciIndex || media_type == media_type::kDockerList) return true;
  if (media_type == media_type::kOciManifest || media_type == media_type::kDockerManifest) {
    return false;
  }
  json parsed = json::parse(body, nullptr, false);
  if (parsed.is_discarded() || !parsed.is_object()) return false;
  std::string declared = StringField(parsed, "mediaType");
  if (!declared.empty())
    return declared == media_type::kOciIndex || declared == media_type::kDockerList;
  return parsed.contains("manifests");
}

absl::StatusOr<ImageIndex> ParseIndex(const std::string& body) {
  absl::StatusOr<json> parsed = ParseObject(body, "image index");
  if (!parsed.ok()) return parsed.status();
  auto manifests = parsed->find("manifests");
  if (manifests == parsed->end() || !manifests->is_array()) {
    return absl::InvalidArgumentError("image index has no \"manifests\" list");
  }
  ImageIndex index;
  for (const json& entry : *manifests) {
    absl::StatusOr<Descriptor> descriptor = ParseDescriptor(entry, "index entry");
    if (!descriptor.ok()) return descriptor.status();
    index.manifests.push_back(*descriptor);
  }
  return index;
}

absl::StatusOr<ImageManifest> ParseManifest(const std::string& body) {
  absl::StatusOr<json> parsed = ParseObject(body, "image manifest");
  if (!parsed.ok()) return parsed.status();
  if (parsed->value("schemaVersion", 0) != 2) {
    return absl::InvalidArgumentError(
        "image manifest: only schemaVersion 2 is supported (Docker schema 1 images are "
        "deprecated)");
  }
  auto config = parsed->find("config");
  if (config == parsed->end()) return absl::InvalidArgumentError("image manifest has no config");
  absl::StatusOr<Descriptor> config_descriptor = ParseDescriptor(*config, "config");
  if (!config_descriptor.ok()) return config_descriptor.status();
  ImageManifest manifest{*config_descriptor, {}};
  auto layers = parsed->find("layers");
  if (layers == parsed->end() || !layers->is_array()) {
    return absl::InvalidArgumentError("image manifest has no \"layers\" list");
  }
  for (const json& entry : *layers) {
    absl::StatusOr<Descriptor> layer = ParseDescriptor(entry, "layer");
    if (!layer.ok()) return layer.status();
    manifest.layers.push_back(*layer);
  }
  return manifest;
}

absl::StatusOr<ImageConfig> ParseImageConfig(const std::string& body) {
  absl::StatusOr<json> parsed = ParseObject(body, "image config");
  if (!parsed.ok()) return parsed.status();
  ImageConfig config;
  config.platform = {StringField(*parsed, "os"), StringField(*parsed, "architecture"),
                     StringField(*parsed, "variant")};
  auto rootfs = parsed->find("rootfs");
  if (rootfs == parsed->end() || !rootfs->is_object() || !rootfs->contains("diff_ids") ||
      !(*rootfs)["diff_ids"].is_array()) {
    return absl::InvalidArgumentError("image config has no rootfs.diff_ids");
  }
  for (const json& diff_id : (*rootfs)["diff_ids"]) {
    absl::StatusOr<Digest> digest =
        Digest::Parse(diff_id.is_string() ? diff_id.get<std::string>() : "");
    if (!digest.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("image config: diff id: ", digest.status().message()));
    }
    config.diff_ids.push_back(*digest);
  }
  if (auto inner = parsed->find("config"); inner != parsed->end() && inner->is_object()) {
    config.user = StringField(*inner, "User");
    config.stop_signal = StringField(*inner, "StopSignal");
  }
  return config;
}

absl::StatusOr<Descriptor> SelectPlatform(const ImageIndex& index, const Platform& platform) {
  const Descriptor* fallback = nullptr;
  std::vector<std::string> available;
  for (const Descriptor& entry : index.manifests) {
    if (!entry.platform) continue;
    available.push_back(entry.platform->String());
    if (entry.platform->os != platform.os ||
        NormalizeArchitecture(entry.platform->architecture) != platform.architecture) {
      continue;
    }
    if (EffectiveVariant(*entry.platform) == EffectiveVariant(platform)) return entry;
    if (fallback == nullptr && (platform.variant.empty() || entry.platform->variant.empty())) {
      fallback = &entry;
    }
  }
  if (fallback != nullptr) return *fallback;
  return absl::NotFoundError(absl::StrCat("no image for platform ", platform.String(),
                                          " (the index has: ", absl::StrJoin(available, ", "),
                                          ")"));
}

absl::StatusOr<LayerCompression> CompressionOf(const std::string& layer_media_type) {
  if (layer_media_type == "application/vnd.oci.image.layer.v1.tar" ||
      layer_media_type == "application/vnd.docker.image.rootfs.diff.tar") {
    return LayerCompression::kNone;
  }
  if (layer_media_type == "application/vnd.oci.image.layer.v1.tar+gzip" ||
      layer_media_type == "application/vnd.docker.image.rootfs.diff.tar.gzip") {
    return LayerCompression::kGzip;
  }
  if (layer_media_type == "application/vnd.oci.image.layer.v1.tar+zstd") {
    return LayerCompression::kZstd;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("layer media type \"", layer_media_type, "\" is not supported"));
}

std::vector<Digest> ChainIds(const std::vector<Digest>& diff_ids) {
  std::vector<Digest> chain;
  for (const Digest& diff_id : diff_ids) {
    if (chain.empty()) {
      chain.push_back(diff_id);
    } else {
      chain.push_back(Digest::Sha256Of(absl::StrCat(chain.back().String(), " ", diff_id.String())));
    }
  }
  return chain;
}

}  // namespace kapal::images
