#include "runtime/images.h"

#include <algorithm>
#include <chrono>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "images/archive.h"
#include "images/garbage.h"
#include "images/manifest.h"
#include "images/reference.h"
#include "nlohmann/json.hpp"

namespace kapal::runtime {

namespace {

// A name:tag reference (no digest, not an id) removes only that tag.
bool IsTagOnly(const std::string& text, const images::ImageRecord& image) {
  if (absl::StartsWith(text, "sha256:") || absl::StartsWith(image.id.Hex(), text)) return false;
  absl::StatusOr<images::Reference> reference = images::ParseReference(text);
  return reference.ok() && !reference->digest;
}

}  // namespace

Images::Images(images::Puller& puller, images::ImageStore& images, images::ContentStore& content,
               snapshotter::Snapshotter& snapshots, metrics::Registry& metrics,
               std::string root_dir, base::Logger& logger)
    : puller_(puller),
      images_(images),
      content_(content),
      snapshots_(snapshots),
      root_dir_(std::move(root_dir)),
      logger_(logger),
      pulls_(prometheus::BuildCounter()
                 .Name(metrics::Registry::Name("image_pulls_total"))
                 .Help("Image pulls by result (success, failure)")
                 .Register(metrics.Prometheus())),
      scrape_(metrics.AddScrapeFunction([this] { return CollectUnsynced(); })) {}

std::vector<prometheus::MetricFamily> Images::CollectUnsynced() {
  absl::StatusOr<snapshotter::UnsyncedCounts> counts = UnsyncedLayers();
  if (!counts.ok()) return {};
  return {metrics::GaugeFamily(
      "image_layers_unsynced",
      "Unpacked image layers whose files are not known to be on disk: boot=\"this\" wait for the "
      "background sync after their pull; boot=\"earlier\" were left so by a machine that went "
      "down and could not be unpacked again (see kapald's log)",
      "boot",
      {{"this", static_cast<double>(counts->this_boot)},
       {"earlier", static_cast<double>(counts->earlier_boot)}})};
}

absl::StatusOr<snapshotter::UnsyncedCounts> Images::UnsyncedLayers() {
  return snapshots_.CountUnsynced();
}

absl::StatusOr<images::ImageRecord> Images::Pull(const std::string& reference,
                                                 const images::Credentials& credentials,
                                                 const images::ProgressCallback& progress) {
  if (reference.empty()) return absl::InvalidArgumentError("pull: the image reference is empty");
  auto started = std::chrono::steady_clock::now();
  images::PullReport report;
  absl::StatusOr<images::ImageRecord> image =
      puller_.Pull(reference, credentials, progress, &report);
  pulls_.Add({{"result", image.ok() ? "success" : "failure"}}).Increment();
  if (!image.ok()) {
    absl::Status failed = image.status();
    if (absl::IsDeadlineExceeded(failed)) {
      // Name the setting, so that whoever reads this knows what to raise.
      failed = absl::DeadlineExceededError(
          absl::StrCat(failed.message(), " (kapal.toml: images.pull_progress_timeout)"));
    }
    logger_.Warn(failed.message());
    return failed;
  }
  logger_.Info("pulled ", reference, " as ", image->id.String(), " in ",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
               "s: ", report.Summary());
  logger_.Debug("pull ", reference, ", layers by start: ", report.Timeline());
  Tell("pull", reference, reference);
  return image;
}

absl::StatusOr<images::ImageRecord> Images::Find(const std::string& text) {
  return images_.Find(text);
}

std::vector<images::ImageRecord> Images::List() { return images_.List(); }

absl::StatusOr<images::PushResult> Images::Push(const std::string& reference,
                                                const images::Credentials& credentials,
                                                const images::PushCallback& progress) {
  absl::StatusOr<images::ImageRecord> image = images_.Find(reference);
  if (!image.ok()) return image.status();
  absl::StatusOr<images::Reference> target = images::ParseReference(reference);
  if (!target.ok()) return target.status();
  auto started = std::chrono::steady_clock::now();
  images::Pusher pusher(content_, puller_.Hosts());
  absl::StatusOr<images::PushResult> pushed =
      pusher.Push(*image, target->String(), credentials, progress);
  if (!pushed.ok()) return pushed.status();
  // Recorded as Docker does, so that a later push to another repository of that registry
  // mounts the blobs instead of sending them again.
  std::string pushed_digest = absl::StrCat(target->Name(), "@", pushed->manifest_digest.String());
  {
    std::lock_guard lock(removal_mutex_);
    absl::StatusOr<images::ImageRecord> now = images_.Get(image->id);
    if (now.ok() && std::find(now->repo_digests.begin(), now->repo_digests.end(), pushed_digest) ==
                        now->repo_digests.end()) {
      now->repo_digests.push_back(pushed_digest);
      if (absl::Status put = images_.Put(*now); !put.ok()) return put;
    }
  }
  logger_.Info("pushed ", target->String(), " (", pushed->manifest_digest.String(), ") in ",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
               "s");
  Tell("push", target->String(), target->String());
  return pushed;
}

absl::StatusOr<images::ImageRecord> Images::Tag(const std::string& source,
                                                const std::string& target) {
  absl::StatusOr<images::Reference> reference = images::ParseReference(target);
  if (!reference.ok()) return reference.status();
  if (reference->digest.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tag ", target, ": a tag cannot name a digest; give NAME[:TAG]"));
  }
  std::lock_guard lock(removal_mutex_);
  absl::StatusOr<images::ImageRecord> image = images_.Find(source);
  if (!image.ok()) return image.status();
  std::string tag = reference->String();
  if (std::find(image->repo_tags.begin(), image->repo_tags.end(), tag) == image->repo_tags.end()) {
    image->repo_tags.push_back(tag);
    if (absl::Status put = images_.Put(*image); !put.ok()) return put;
  }
  logger_.Info("image ", image->id.String(), " tagged ", tag);
  Tell("tag", image->id.String(), tag);
  return image;
}

absl::Status Images::Remove(const std::string& text) {
  if (text.empty()) return absl::InvalidArgumentError("remove image: the image is empty");
  std::lock_guard lock(removal_mutex_);
  absl::StatusOr<images::ImageRecord> image = images_.Find(text);
  if (!image.ok()) return image.status();
  if (IsTagOnly(text, *image) && image->repo_tags.size() > 1) {
    absl::StatusOr<images::Reference> reference = images::ParseReference(text);
    absl::StatusOr<int> remaining = images_.Untag(*reference);
    if (!remaining.ok()) return remaining.status();
    logger_.Info("untagged ", reference->Canonical(), "; ", image->id.String(), " keeps ",
                 *remaining, " tags");
    Tell("untag", image->id.String(), reference->String());
    return absl::OkStatus();
  }
  if (absl::Status removed = images_.Remove(image->id); !removed.ok()) return removed;
  logger_.Info("removed image ", image->id.String());
  for (const std::string& tag : image->repo_tags) Tell("untag", image->id.String(), tag);
  Tell("delete", image->id.String(), image->repo_tags.empty() ? "" : image->repo_tags.front());
  return CollectGarbage(image->blobs);
}

absl::Status Images::CollectGarbage(const std::vector<images::Digest>& released_blobs) {
  {
    std::unique_lock collecting(images_.CollectionLock());
    for (const images::Digest& blob : images_.UnusedBlobs(released_blobs)) {
      if (absl::Status removed = content_.Remove(blob); !removed.ok()) return removed;
    }
  }
  return images::RemoveUnusedSnapshots(images_, snapshots_);
}

absl::StatusOr<FilesystemUsage> Images::Usage() {
  absl::StatusOr<std::pair<int64_t, int64_t>> blobs = content_.Totals();
  if (!blobs.ok()) return blobs.status();
  absl::StatusOr<snapshotter::Usage> layers = snapshots_.CommittedUsage();
  if (!layers.ok()) return layers.status();
  FilesystemUsage usage;
  usage.mountpoint = root_dir_;
  usage.containers_mountpoint =
      snapshots_.WritableRoot() == snapshots_.Root() ? root_dir_ : snapshots_.WritableRoot();
  usage.images = {blobs->first + layers->bytes, blobs->second + layers->inodes};
  for (const snapshotter::Info& info : snapshots_.Walk()) {
    if (info.kind == snapshotter::Kind::kCommitted) continue;
    base::TreeUsage measured = base::MeasureTree(info.directory);
    usage.containers.bytes += measured.bytes;
    usage.containers.inodes += measured.inodes;
  }
  return usage;
}

absl::StatusOr<std::vector<images::ImageRecord>> Images::Import(const std::string& path) {
  absl::StatusOr<std::vector<images::ImageRecord>> imported =
      images::ImportArchive(path, content_, puller_);
  if (!imported.ok()) {
    logger_.Warn(imported.status().message());
    return imported.status();
  }
  for (const images::ImageRecord& image : *imported) {
    logger_.Info("imported ", image.id.String());
    Tell("load", image.id.String(), image.repo_tags.empty() ? "" : image.repo_tags.front());
  }
  return imported;
}

void Images::Tell(const std::string& action, const std::string& id, const std::string& name) {
  if (journal_ == nullptr) return;
  JournalEvent event;
  event.type = "image";
  event.action = action;
  event.id = id;
  if (!name.empty()) event.attributes["name"] = name;
  journal_->Publish(std::move(event));
}

absl::Status Images::Export(const std::vector<images::ImageRecord>& images,
                            const std::function<absl::Status(const char*, size_t)>& sink) {
  return images::ExportArchive(images, content_, sink);
}

std::vector<HistoryEntry> Images::History(const images::ImageRecord& image) {
  std::vector<HistoryEntry> entries;
  nlohmann::json config = nlohmann::json::parse(image.config_json, nullptr, false);
  if (!config.is_object()) return entries;
  std::vector<images::Digest> diff_ids;
  if (config.contains("rootfs") && config["rootfs"].is_object()) {
    for (const nlohmann::json& id : config["rootfs"].value("diff_ids", nlohmann::json::array())) {
      if (!id.is_string()) continue;
      if (absl::StatusOr<images::Digest> parsed = images::Digest::Parse(id.get<std::string>());
          parsed.ok()) {
        diff_ids.push_back(*parsed);
      }
    }
  }
  std::vector<images::Digest> chain_ids = images::ChainIds(diff_ids);
  nlohmann::json history = config.value("history", nlohmann::json::array());
  if (!history.is_array()) history = nlohmann::json::array();
  size_t described = 0;
  for (const nlohmann::json& item : history) {
    if (item.is_object() && !item.value("empty_layer", false)) ++described;
  }
  auto layer_size = [&](size_t index) -> int64_t {
    absl::StatusOr<snapshotter::Usage> usage = snapshots_.GetUsage(chain_ids[index].String());
    return usage.ok() ? usage->bytes : 0;
  };
  // Layers without history (the base of an image some tool made without it) come first.
  size_t layer = 0;
  for (; described + layer < chain_ids.size(); ++layer) {
    HistoryEntry entry;
    entry.size = layer_size(layer);
    entries.push_back(std::move(entry));
  }
  for (const nlohmann::json& item : history) {
    if (!item.is_object()) continue;
    HistoryEntry entry;
    entry.created = item.value("created", "");
    entry.created_by = item.value("created_by", "");
    entry.comment = item.value("comment", "");
    entry.empty_layer = item.value("empty_layer", false);
    if (!entry.empty_layer && layer < chain_ids.size()) entry.size = layer_size(layer++);
    entries.push_back(std::move(entry));
  }
  std::reverse(entries.begin(), entries.end());
  return entries;
}

}  // namespace kapal::runtime
