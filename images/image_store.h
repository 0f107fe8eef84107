#pragma once

#include <cstdint>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "images/digest.h"
#include "images/reference.h"
#include "store/store.h"

namespace kapal::images {

// An image as kapal keeps it: identified by its config digest (the CRI image id), named by
// tags ("127.0.0.1:5000/a/b:1") and digests ("127.0.0.1:5000/a/b@sha256:...").
struct ImageRecord {
  Digest id;
  Digest manifest_digest;
  std::string media_type;
  int64_t size = 0;     // compressed layers + config + manifest, as registries count it
  Digest top_chain_id;  // the snapshot holding the image's root filesystem
  std::string config_json;
  int64_t created_at = 0;
  std::vector<std::string> repo_tags;
  std::vector<std::string> repo_digests;
  std::vector<Digest> blobs;  // content this image holds (index, manifest, config, layers)
};

class ImageStore {
 public:
  explicit ImageStore(store::Store& store) : store_(store) {}

  // Records IMAGE and points its tags and digests at it, in one transaction. A tag that named
  // another image moves (that image keeps its other references, as in containerd).
  absl::Status Put(const ImageRecord& image);

  // Finds an image by id ("sha256:<hex>", the bare hex, or an unambiguous prefix of at least
  // 12 digits), or by a reference, normalized (busybox → docker.io/library/busybox:latest).
  // NOT_FOUND when nothing matches; INVALID_ARGUMENT for a malformed reference.
  absl::StatusOr<ImageRecord> Find(const std::string& id_or_reference);
  absl::StatusOr<ImageRecord> Get(const Digest& id);
  std::vector<ImageRecord> List();

  // Removes tag TAG_REFERENCE (normalized) from its image; returns how many tags the image
  // still has. NOT_FOUND when no image has that tag.
  absl::StatusOr<int> Untag(const Reference& tag_reference);
  absl::Status Remove(const Digest& id);

  // What no remaining image uses: blobs, and chain ids of snapshots.
  std::vector<Digest> UnusedBlobs(const std::vector<Digest>& candidates);
  std::vector<Digest> ChainIdsInUse();

  // Pulls and imports hold this shared from their first download until their image is
  // recorded; garbage collection holds it alone. Otherwise a collection that runs meanwhile
  // sees a layer a pull has committed (or found present) but not yet recorded as unused, and
  // removes it under the pull (kubelet's image GC and its pulls do run at once).
  std::shared_mutex& CollectionLock() { return collection_lock_; }

 private:
  store::Store& store_;
  std::shared_mutex collection_lock_;
};

}  // namespace kapal::images
