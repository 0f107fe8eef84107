#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "images/digest.h"

namespace kapal::images {

// Media types kapal understands.
namespace media_type {
inline constexpr const char kOciIndex[] = "application/vnd.oci.image.index.v1+json";
inline constexpr const char kOciManifest[] = "application/vnd.oci.image.manifest.v1+json";
inline constexpr const char kDockerList[] =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr const char kDockerManifest[] =
    "application/vnd.docker.distribution.manifest.v2+json";
}  // namespace media_type

struct Platform {
  std::string os;
  std::string architecture;
  std::string variant;
  std::string String() const;
};

// This node's platform in OCI terms (linux/amd64, linux/arm64/v8, ...).
Platform HostPlatform();

struct Descriptor {
  std::string media_type;
  Digest digest;
  int64_t size = 0;
  std::optional<Platform> platform;
};

struct ImageIndex {
  std::vector<Descriptor> manifests;
};

struct ImageManifest {
  Descriptor config;
  std::vector<Descriptor> layers;
};

// What kapal uses of an image config.
struct ImageConfig {
  Platform platform;
  std::vector<Digest> diff_ids;
  std::string user;
  std::string stop_signal;
};

enum class LayerCompression { kNone, kGzip, kZstd };

// The kind of a manifest body: index (OCI index or Docker list) or image manifest. The media
// type comes from Content-Type, or from the body when a registry leaves it out.
bool IsIndex(const std::string& media_type, const std::string& body);

absl::StatusOr<ImageIndex> ParseIndex(const std::string& body);
absl::StatusOr<ImageManifest> ParseManifest(const std::string& body);
absl::StatusOr<ImageConfig> ParseImageConfig(const std::string& body);

// The manifest of INDEX for PLATFORM: os and architecture must match; a variant is preferred
// when it matches, and arm64 without a variant counts as v8. NOT_FOUND lists what is there.
absl::StatusOr<Descriptor> SelectPlatform(const ImageIndex& index, const Platform& platform);

// How a layer blob is compressed, from its media type; foreign or unknown layers are
// INVALID_ARGUMENT.
absl::StatusOr<LayerCompression> CompressionOf(const std::string& layer_media_type);

// OCI chain ids: ChainID(L0) = DiffID(L0); ChainID(Ln) = sha256(ChainID(Ln-1) + " " + DiffID(Ln)).
// Images that share their first layers share those chain ids, and so their snapshots.
std::vector<Digest> ChainIds(const std::vector<Digest>& diff_ids);

}  // namespace kapal::images
