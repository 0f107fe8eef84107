#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "images/content_store.h"
#include "images/image_store.h"
#include "images/puller.h"

namespace kapal::images {

// Imports every image of the tar archive at PATH: an OCI image layout (oci-layout, index.json,
// blobs/) or a `docker save` archive (manifest.json with configs and layer tars). Every blob
// passes through the content store's digest check; a blob whose content does not match its
// name fails the import (DATA_LOSS) and no image is recorded.
absl::StatusOr<std::vector<ImageRecord>> ImportArchive(const std::string& path,
                                                       ContentStore& content, Puller& puller);

// Writes IMAGES as one OCI image layout tar, handing the bytes to SINK as they are produced.
// Each tag is an index.json entry (io.containerd.image.name annotation); a manifest.json beside
// it names configs, layers and tags as `docker save` does, so `docker load` of Docker 20.10
// reads it too (as Docker 25's own save does). Blobs shared by images are written once.
absl::Status ExportArchive(const std::vector<ImageRecord>& images, ContentStore& content,
                           const std::function<absl::Status(const char*, size_t)>& sink);

}  // namespace kapal::images
