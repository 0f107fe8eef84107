#pragma once

// images: references, the registry client, the content store, layer unpack, the puller and
// image records. It knows nothing of pods, containers or any front door's API.

#include <chrono>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "images/content_store.h"
#include "images/image_store.h"
#include "images/manifest.h"
#include "images/registry_client.h"
#include "images/registry_hosts.h"
#include "images/unpack.h"
#include "snapshotter/snapshotter.h"

namespace kapal::images {

// Progress of one layer download, reported as bytes arrive.
struct LayerProgress {
  std::string digest;
  int64_t done = 0;
  int64_t total = 0;
  bool cached = false;  // already in the content store: nothing to download
};
using ProgressCallback = std::function<void(const LayerProgress&)>;

// When one fetched layer's work happened, in seconds since its pull began.
struct LayerTimes {
  std::string digest;     // short form
  int64_t bytes = 0;      // compressed
  double started = 0;     // its download began
  double downloaded = 0;  // its blob was complete, its digest checked
  double staged = 0;      // its tree was unpacked in staging (0: unpacked at commit instead)
};

// Where one pull's time went, each part summed over its layers (layers overlap, so the parts
// add up to more than the pull's own time). For the log and the benchmark.
struct PullReport {
  std::chrono::steady_clock::time_point began = std::chrono::steady_clock::now();
  std::vector<LayerTimes> layers;  // the fetched ones, in the order they were done
  int layers_fetched = 0;
  int ranged_layers = 0;    // of those, fetched in parallel byte ranges
  int streamed_layers = 0;  // of those, unpacked while they downloaded
  int64_t bytes_fetched = 0;
  double download_seconds = 0;  // from the registry into the content store, sha256 included
  // The unpacks' CPU (user and system seconds of their threads):
  double inflate_seconds = 0;  // reading the blob and inflating it
  double hash_seconds = 0;     // the uncompressed tar's sha256 (its diff id)
  double write_seconds = 0;    // tar parsing, creating and writing files
  double commit_seconds = 0;   // syncfs and recording the snapshots
  std::string formats;         // the layers' compressions, e.g. "gzip (isa-l)"
  std::string Summary() const;
  // The layers' times, by start: which one set the pull's length, which waited.
  std::string Timeline() const;
};

struct PullOptions {
  int max_concurrent_downloads = 3;
  int attempts = 3;  // per blob, for network errors and 5xx
  // A transfer that moves no byte this long ends the pull with DEADLINE_EXCEEDED; 0: no limit.
  std::chrono::seconds progress_timeout{300};
  Platform platform = HostPlatform();
  InflateEngine inflate = InflateEngine::kIsal;
  // A layer of at least RANGE_MIN_BYTES is fetched as RANGE_PARTS byte ranges at once, when the
  // registry serves ranges (else in one request): one TCP stream is often held back by the
  // path or a registry's per-connection limit, and the largest layer is a pull's critical path.
  // The digest is still checked over the whole blob.
  int64_t range_min_bytes = 64 << 20;
  int range_parts = 4;
  // With overlay, a layer of at least STREAM_MIN_BYTES (0: none) is unpacked while it
  // downloads: the unpack reads the blob's file behind the download (the tree is kept only if
  // the blob's digest matches), so inflating and writing files overlap the transfer and the
  // blob's fsync. Off, each layer is unpacked after its blob is committed.
  int64_t stream_min_bytes = 1;
  // When a layer's unpacked tree reaches the disk. Deferred (overlay): the commit does not wait
  // for it, since the layer's blob is fsynced before and can unpack it again; after a crash of
  // the machine, RebuildUnsyncedLayers does. At commit: one syncfs per committed layer.
  // Pulls hold the background sync off while they run (Snapshotter::SyncHold).
  snapshotter::Sync layer_sync = snapshotter::Sync::kDeferred;
  // Synced at commit (overlay): how much of the layers' files a pull writes between two
  // background syncfs while it unpacks, so that each commit's syncfs finds little left (where a
  // flush is what writes, a virtual disk, the commit otherwise waited for all of it).
  int64_t sync_behind_bytes = 16 << 20;
  RegistryHosts hosts;  // mirrors, TLS settings and credentials per registry
};

// Pulls images into the content store and snapshots: resolves the reference, picks this node's
// platform from an index, downloads config and layers (several at once; a blob already present
// or being fetched by another pull is not fetched again), checks every digest, unpacks each
// layer into a snapshot keyed by its chain id, and records the image. A failed pull commits no
// snapshot and no image.
class Puller {
 public:
  Puller(ContentStore& content, snapshotter::Snapshotter& snapshots, ImageStore& images,
         PullOptions options)
      : content_(content), snapshots_(snapshots), images_(images), options_(std::move(options)) {}

  // REPORT, when given, receives where the time went.
  absl::StatusOr<ImageRecord> Pull(const std::string& reference, const Credentials& credentials,
                                   const ProgressCallback& progress = nullptr,
                                   PullReport* report = nullptr);
  // The registry settings pulls use (pushes use them too).
  const RegistryHosts& Hosts() const { return options_.hosts; }

  // A layer a pull unpacked into a staging directory before its parent was committed, and the
  // space its tree takes: measured by the download worker while other layers still unpack, so
  // that the commits after the last layer do not walk every tree again.
  struct StagedLayer {
    std::string directory;
    snapshotter::Usage usage;
  };

  // Unpacks an image whose manifest, config and layers are all in the content store, and records
  // it under REPO_TAGS and REPO_DIGESTS (pull and import both end here). EXTRA_BLOBS are held by
  // the image too (an index it came from). STAGED: layers already unpacked, by layer digest.
  absl::StatusOr<ImageRecord> UnpackAndRecord(const Digest& manifest_digest,
                                              const std::string& manifest_media_type,
                                              const std::vector<std::string>& repo_tags,
                                              const std::vector<std::string>& repo_digests,
                                              const std::vector<Digest>& extra_blobs,
                                              const std::map<std::string, StagedLayer>& staged = {},
                                              PullReport* report = nullptr);

  // What RebuildUnsyncedLayers did.
  struct Rebuilt {
    int layers = 0;                     // unpacked again from their blobs
    std::vector<std::string> failures;  // one line per layer that could not be
  };
  // The layers whose deferred sync an earlier boot did not live to see (a power loss or a
  // crash of the machine may have left their files incomplete), unpacked again from their
  // blobs, each diff id checked, and put in place of the old trees. At start, before anything
  // mounts them.
  Rebuilt RebuildUnsyncedLayers();

  // The key prefix of snapshots being unpacked; kapald removes leftovers at start.
  static constexpr const char kExtractPrefix[] = "extract-";

 private:
  // UnpackAndRecord with the image store's collection lock already held (shared).
  absl::StatusOr<ImageRecord> UnpackAndRecordHeld(const Digest& manifest_digest,
                                                  const std::string& manifest_media_type,
                                                  const std::vector<std::string>& repo_tags,
                                                  const std::vector<std::string>& repo_digests,
                                                  const std::vector<Digest>& extra_blobs,
                                                  const std::map<std::string, StagedLayer>& staged,
                                                  PullReport* report);
  absl::Status Download(RegistryClient& client, const std::string& repository,
                        const Descriptor& blob, const ProgressCallback& progress,
                        PullReport* report);
  // Downloads LAYER and unpacks it into a staging directory at once (the unpack follows the
  // blob's file as it is written); the directory, or "" when that does not apply (not overlay,
  // already there, a network fault: the caller then downloads it the ordinary way).
  absl::StatusOr<std::string> DownloadAndStage(
      RegistryClient& client, const std::string& repository, const Descriptor& layer,
      const Digest& diff_id, const Digest& chain_id, const ProgressCallback& progress,
      PullReport* report, UnpackedLayer& unpacked,
      std::chrono::steady_clock::time_point& downloaded, base::WriteBehindSync* files_behind);
  // BLOB's bytes into WRITER, as ranges (FetchInRanges) or in one request, PROGRESS told at
  // most every 100 ms.
  absl::Status FetchInto(RegistryClient& client, const std::string& repository,
                         const Descriptor& blob, bool ranges, BlobWriter& writer,
                         const ProgressCallback& progress);
  // BLOB's bytes as options_.range_parts ranges fetched at once into WRITER. FAILED_PRECONDITION
  // when the registry does not serve ranges.
  absl::Status FetchInRanges(RegistryClient& client, const std::string& repository,
                             const Descriptor& blob, BlobWriter& writer,
                             const std::function<void()>& progress);
  // STAGED, when given, holds the layer already unpacked (and its diff id checked) while its
  // parent was not yet committed; it becomes the snapshot's content.
  absl::Status UnpackLayer(const Descriptor& layer, const Digest& diff_id, const Digest& chain_id,
                           const std::string& parent, const StagedLayer* staged,
                           PullReport* report);
  // Unpacks LAYER into active snapshot KEY, checking its diff id.
  absl::StatusOr<UnpackedLayer> UnpackInto(const Descriptor& layer, const Digest& diff_id,
                                           const std::string& key);
  // Overlay: unpacks LAYER into a staging directory at once (the download worker does, so
  // layers unpack in parallel and while others download). "" when the layer is there already
  // or staging does not apply.
  // LAYER's blob unpacked into a fresh staging directory (overlay form), its diff id checked;
  // nothing is left when it fails. FILES_BEHIND, when given, is told of the files' bytes.
  absl::StatusOr<std::string> UnpackIntoStaging(const Descriptor& layer, const Digest& diff_id,
                                                UnpackedLayer& result,
                                                base::WriteBehindSync* files_behind = nullptr);
  absl::StatusOr<std::string> StageLayer(const Descriptor& layer, const Digest& diff_id,
                                         const Digest& chain_id, UnpackedLayer& unpacked,
                                         base::WriteBehindSync* files_behind);
  // Adds one unpacked layer's times to REPORT (may be null).
  void Account(const UnpackedLayer& unpacked, PullReport* report);
  // Runs WORK once for KEY while concurrent callers with the same KEY wait for its result.
  absl::Status Shared(const std::string& key, const std::function<absl::Status()>& work);

  ContentStore& content_;
  snapshotter::Snapshotter& snapshots_;
  ImageStore& images_;
  PullOptions options_;
  std::mutex in_flight_mutex_;
  std::map<std::string, std::shared_future<absl::Status>> in_flight_;
  std::mutex report_mutex_;
};

}  // namespace kapal::images
