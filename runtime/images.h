#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/files.h"
#include "base/logger.h"
#include "images/content_store.h"
#include "images/image_store.h"
#include "images/puller.h"
#include "images/pusher.h"
#include "metrics/metrics.h"
#include "runtime/journal.h"
#include "snapshotter/snapshotter.h"

namespace kapal::runtime {

// Where images and containers keep their bytes, for ImageFsInfo and `docker info`.
struct FilesystemUsage {
  std::string mountpoint;  // of images: kapald's root
  base::TreeUsage images;  // blobs and committed layers
  // Where containers' writable layers live (the root unless [images] writable_layers_dir) and
  // their size.
  std::string containers_mountpoint;
  base::TreeUsage containers;
};

// One step of an image's history (its config's "history"), with the size of its layer.
struct HistoryEntry {
  std::string created;  // RFC 3339, as the config has it
  std::string created_by;
  std::string comment;
  int64_t size = 0;  // of the layer as unpacked; 0 for a step that made none
  bool empty_layer = false;
};

// The node's images for every front door: pulls (counted and logged), look-ups, removal with
// the collection of blobs and layers no image uses any more, disk usage, import and export.
class Images {
 public:
  Images(images::Puller& puller, images::ImageStore& images, images::ContentStore& content,
         snapshotter::Snapshotter& snapshots, metrics::Registry& metrics, std::string root_dir,
         base::Logger& logger);
  Images(const Images&) = delete;
  Images& operator=(const Images&) = delete;

  // Where pulls, tags, removals, imports and pushes are told (the runtime's journal).
  void AttachJournal(Journal* journal) { journal_ = journal; }

  absl::StatusOr<images::ImageRecord> Pull(const std::string& reference,
                                           const images::Credentials& credentials,
                                           const images::ProgressCallback& progress = nullptr);
  // By id, unique id prefix, tag or digest reference; NOT_FOUND when unknown.
  absl::StatusOr<images::ImageRecord> Find(const std::string& text);
  std::vector<images::ImageRecord> List();
  // Uploads the image REFERENCE (NAME:TAG) names to that registry and repository.
  absl::StatusOr<images::PushResult> Push(const std::string& reference,
                                          const images::Credentials& credentials,
                                          const images::PushCallback& progress = nullptr);
  // Points TARGET (NAME[:TAG], normalized) at the image SOURCE names; a tag that named another
  // image moves. Returns the image.
  absl::StatusOr<images::ImageRecord> Tag(const std::string& source, const std::string& target);
  // Removing one tag of an image that has several only untags it; otherwise the image goes
  // with the blobs and layers only it used. NOT_FOUND when unknown.
  absl::Status Remove(const std::string& text);
  // Images are counted from what the store recorded when each blob and layer was written (no
  // walk of the disk on kubelet's frequent polls); only writable snapshots are measured.
  absl::StatusOr<FilesystemUsage> Usage();
  // Layers whose files were not synced yet (the default: a pull does not wait for them), and
  // those an earlier boot left unsynced that could not be unpacked again at start (their files
  // may be incomplete). Also served as kapal_image_layers_unsynced{boot="this"|"earlier"}.
  absl::StatusOr<snapshotter::UnsyncedCounts> UnsyncedLayers();
  // IMAGE's history, newest first (as `docker history` shows it).
  std::vector<HistoryEntry> History(const images::ImageRecord& image);
  // An OCI image layout tar or a `docker save` tar at PATH; every blob digest-checked.
  absl::StatusOr<std::vector<images::ImageRecord>> Import(const std::string& path);
  // IMAGES as one OCI image layout tar (with docker save's manifest.json), handed to SINK piece
  // by piece.
  absl::Status Export(const std::vector<images::ImageRecord>& images,
                      const std::function<absl::Status(const char*, size_t)>& sink);

 private:
  absl::Status CollectGarbage(const std::vector<images::Digest>& released_blobs);
  // kapal_image_layers_unsynced, at scrape time.
  std::vector<prometheus::MetricFamily> CollectUnsynced();
  void Tell(const std::string& action, const std::string& id, const std::string& name);

  images::Puller& puller_;
  images::ImageStore& images_;
  images::ContentStore& content_;
  snapshotter::Snapshotter& snapshots_;
  std::string root_dir_;
  base::Logger& logger_;
  prometheus::Family<prometheus::Counter>& pulls_;
  std::mutex removal_mutex_;
  Journal* journal_ = nullptr;
  // Last: the registry may outlive the images, and scrapes stop reading them before the rest
  // goes.
  std::unique_ptr<metrics::Registry::ScrapeHandle> scrape_;
};

}  // namespace kapal::runtime
