#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "images/content_store.h"
#include "images/digest.h"
#include "images/image_store.h"
#include "images/registry_client.h"
#include "images/registry_hosts.h"

namespace kapal::images {

// What a push reports per blob (layers, then the config) as it goes.
struct PushProgress {
  enum class Phase { kPreparing, kExists, kMounted, kPushing, kPushed };
  Phase phase = Phase::kPreparing;
  std::string digest;
  int64_t done = 0;
  int64_t total = 0;
};
using PushCallback = std::function<void(const PushProgress&)>;

struct PushResult {
  std::string tag;
  Digest manifest_digest;
  int64_t manifest_size = 0;
};

// Uploads an image from the content store to a registry (OCI distribution spec): each blob the
// registry does not have yet, mounted from another repository of the same registry when the
// image was pulled from one, else uploaded in one PUT; then the manifest under the tag. The
// origin registry, never a mirror; credentials as for pulls.
class Pusher {
 public:
  Pusher(ContentStore& content, RegistryHosts hosts)
      : content_(content), hosts_(std::move(hosts)) {}

  // REFERENCE names where to (NAME:TAG, normalized). IMAGE's manifest must be an image manifest
  // (an index is UNIMPLEMENTED for now); a blob missing from the content store is NOT_FOUND.
  absl::StatusOr<PushResult> Push(const ImageRecord& image, const std::string& reference,
                                  const Credentials& credentials,
                                  const PushCallback& progress = nullptr);

 private:
  ContentStore& content_;
  RegistryHosts hosts_;
};

}  // namespace kapal::images
