#include "images/puller.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <optional>
#include <shared_mutex>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "base/unique_fd.h"

namespace kapal::images {

namespace {

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

absl::Status Annotate(const absl::Status& status, absl::string_view context) {
  if (status.ok()) return status;
  return absl::Status(status.code(), absl::StrCat(context, ": ", status.message()));
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

std::string PullReport::Summary() const {
  return absl::StrFormat(
      "%d layers fetched (%.1f MB, %s, %d in parallel ranges, %d unpacked while downloading); "
      "summed over layers: download+sha256 %.2fs (wall), unpack CPU: inflate %.2fs, diff-id "
      "sha256 %.2fs, files %.2fs; commit %.2fs",
      layers_fetched, bytes_fetched / 1e6, formats.empty() ? "none" : formats, ranged_layers,
      streamed_layers, download_seconds, inflate_seconds, hash_seconds, write_seconds,
      commit_seconds);
}

std::string PullReport::Timeline() const {
  std::vector<LayerTimes> by_start = layers;
  std::stable_sort(by_start.begin(), by_start.end(),
                   [](const LayerTimes& a, const LayerTimes& b) { return a.started < b.started; });
  std::vector<std::string> parts;
  for (const LayerTimes& layer : by_start) {
    std::string staged =
        layer.staged > 0 ? absl::StrFormat(", staged %.2fs", layer.staged) : std::string();
    parts.push_back(absl::StrFormat("%s (%.1f MB) downloaded %.2f-%.2fs%s", layer.digest,
                                    layer.bytes / 1e6, layer.started, layer.downloaded, staged));
  }
  return parts.empty() ? "no layer fetched" : absl::StrJoin(parts, "; ");
}

void Puller::Account(const UnpackedLayer& unpacked, PullReport* report) {
  if (report == nullptr) return;
  std::lock_guard lock(report_mutex_);
  report->inflate_seconds += unpacked.inflate_seconds;
  report->hash_seconds += unpacked.hash_seconds;
  report->write_seconds += unpacked.write_seconds;
  if (!absl::StrContains(report->formats, unpacked.format)) {
    report->formats = report->formats.empty()
                          ? unpacked.format
                          : absl::StrCat(report->formats, ", ", unpacked.format);
  }
}

absl::Status Puller::Shared(const std::string& key, const std::function<absl::Status()>& work) {
  std::promise<absl::Status> promise;
  std::shared_future<absl::Status> result;
  {
    std::lock_guard lock(in_flight_mutex_);
    auto found = in_flight_.find(key);
    if (found != in_flight_.end()) {
      result = found->second;
    } else {
      in_flight_[key] = promise.get_future().share();
    }
  }
  if (result.valid()) return result.get();
  absl::Status status = work();
  promise.set_value(status);
  std::lock_guard lock(in_flight_mutex_);
  in_flight_.erase(key);
  return status;
}

absl::Status Puller::Download(RegistryClient& client, const std::string& repository,
                              const Descriptor& blob, const ProgressCallback& progress,
                              PullReport* report) {
  return Shared("blob:" + blob.digest.String(), [&]() -> absl::Status {
    if (content_.Has(blob.digest)) {
      if (progress) progress({blob.digest.String(), blob.size, blob.size, true});
      return absl::OkStatus();
    }
    bool ranges = options_.range_parts > 1 && blob.size >= options_.range_min_bytes;
    absl::Status last;
    for (int attempt = 0; attempt < options_.attempts; ++attempt) {
      if (attempt > 0) std::this_thread::sleep_for(std::chrono::milliseconds(200 << attempt));
      absl::StatusOr<std::unique_ptr<BlobWriter>> writer =
          content_.Writer(blob.digest, blob.size, blob.media_type);
      if (!writer.ok()) return writer.status();
      last = FetchInto(client, repository, blob, ranges, **writer, progress);
      // A registry that does not serve ranges gets one ordinary request instead.
      if (ranges && absl::IsFailedPrecondition(last)) {
        ranges = false;
        --attempt;
        continue;
      }
      if (ranges && last.ok() && report != nullptr) {
        std::lock_guard lock(report_mutex_);
        report->ranged_layers += 1;
      }
      if (last.ok()) {
        absl::StatusOr<int64_t> committed = (*writer)->Commit();
        if (committed.ok() && progress)
          progress({blob.digest.String(), *committed, blob.size, false});
        return committed.status();
      }
      // Only a network fault or a busy registry is worth another try.
      if (!absl::IsUnavailable(last)) return last;
    }
    return last;
  });
}

absl::StatusOr<std::string> Puller::DownloadAndStage(
    RegistryClient& client, const std::string& repository, const Descriptor& layer,
    const Digest& diff_id, const Digest& chain_id, const ProgressCallback& progress,
    PullReport* report, UnpackedLayer& unpacked, std::chrono::steady_clock::time_point& downloaded,
    base::WriteBehindSync* files_behind) {
  if (snapshots_.GetDriver() != snapshotter::Driver::kOverlay) return std::string();
  if (absl::StatusOr<snapshotter::Info> existing = snapshots_.Stat(chain_id.String());
      existing.ok() && existing->kind == snapshotter::Kind::kCommitted) {
    return std::string();
  }
  std::string staged;
  // One try (the ordinary download retries); in ranges first when the blob is large, and again
  // in one request when the registry does not serve ranges.
  auto attempt = [&](bool ranges) -> absl::Status {
    auto download_started = std::chrono::steady_clock::now();
    absl::StatusOr<std::unique_ptr<BlobWriter>> writer =
        content_.Writer(layer.digest, layer.size, layer.media_type);
    if (!writer.ok()) return writer.status();
    absl::StatusOr<std::unique_ptr<ByteSource>> follower = (*writer)->Follow();
    if (!follower.ok()) return follower.status();
    absl::StatusOr<std::string> directory = snapshots_.NewStagingDirectory();
    if (!directory.ok()) return directory.status();
    // The unpack reads the blob's file behind the download: the bytes are copied once from the
    // network and read back from the page cache, as when the unpack follows the download, but
    // inflate and writing the files overlap the transfer and the blob's fsync.
    absl::StatusOr<UnpackedLayer> unpack_result = absl::UnknownError("not run");
    std::thread unpacker([&] {
      unpack_result = images::UnpackLayerFrom(std::move(*follower), layer.digest.String(),
                                              *directory, WhiteoutStyle::kOverlay, &diff_id,
                                              options_.inflate, files_behind);
    });
    absl::Status status = FetchInto(client, repository, layer, ranges, **writer, progress);
    if (status.ok()) {
      // Only a blob whose digest matches makes its unpacked tree worth keeping.
      absl::StatusOr<int64_t> committed = (*writer)->Commit();
      status = committed.status();
      if (committed.ok() && progress) {
        progress({layer.digest.String(), *committed, layer.size, false});
      }
      if (committed.ok()) downloaded = std::chrono::steady_clock::now();
      if (committed.ok() && report != nullptr) {
        std::lock_guard lock(report_mutex_);
        report->download_seconds += SecondsSince(download_started);
      }
    } else {
      (*writer)->Abandon(status);
    }
    unpacker.join();
    if (status.ok() && !unpack_result.ok()) status = unpack_result.status();
    if (!status.ok()) {
      (void)base::RemoveTree(*directory);
      return status;
    }
    if (ranges && report != nullptr) {
      std::lock_guard lock(report_mutex_);
      report->ranged_layers += 1;
    }
    unpacked = *unpack_result;
    staged = *directory;
    return absl::OkStatus();
  };
  absl::Status result = Shared("blob:" + layer.digest.String(), [&]() -> absl::Status {
    if (content_.Has(layer.digest)) return absl::OkStatus();  // another pull fetched it
    bool ranges = options_.range_parts > 1 && layer.size >= options_.range_min_bytes;
    absl::Status tried = attempt(ranges);
    if (ranges && absl::IsFailedPrecondition(tried)) tried = attempt(false);
    return tried;
  });
  // A network fault: the ordinary download (with its retries) follows.
  if (absl::IsUnavailable(result)) return std::string();
  if (!result.ok()) return result;
  return staged;
}

absl::Status Puller::FetchInto(RegistryClient& client, const std::string& repository,
                               const Descriptor& blob, bool ranges, BlobWriter& writer,
                               const ProgressCallback& progress) {
  std::mutex progress_mutex;
  auto last_report = std::chrono::steady_clock::now();
  auto report_progress = [&] {
    if (!progress) return;
    std::lock_guard lock(progress_mutex);
    auto now = std::chrono::steady_clock::now();
    if (now - last_report > std::chrono::milliseconds(100)) {
      last_report = now;
      progress({blob.digest.String(), writer.Written(), blob.size, false});
    }
  };
  if (ranges) return FetchInRanges(client, repository, blob, writer, report_progress);
  return client.FetchBlob(repository, blob.digest, [&](const char* data, size_t size) {
    absl::Status written = writer.Write(data, size);
    report_progress();
    return written;
  });
}

absl::Status Puller::FetchInRanges(RegistryClient& client, const std::string& repository,
                                   const Descriptor& blob, BlobWriter& writer,
                                   const std::function<void()>& progress) {
  int64_t parts = std::min<int64_t>(options_.range_parts, blob.size);
  int64_t part_size = (blob.size + parts - 1) / parts;
  std::vector<absl::Status> results(static_cast<size_t>(parts));
  std::vector<std::thread> fetchers;
  for (int64_t part = 0; part < parts; ++part) {
    int64_t start = part * part_size;
    int64_t length = std::min(part_size, blob.size - start);
    if (length <= 0) break;
    fetchers.emplace_back([&, part, start, length] {
      int64_t offset = start;
      results[static_cast<size_t>(part)] = client.FetchBlobRange(
          repository, blob.digest, start, length, [&](const char* data, size_t size) {
            if (offset + static_cast<int64_t>(size) > start + length) {
              // A 206 with more than was asked: the server does not really serve ranges.
              return absl::FailedPreconditionError(absl::StrCat(
                  "blob ", blob.digest.String(), ": the registry sent more than the range"));
            }
            absl::Status written = writer.WriteAt(offset, data, size);
            offset += static_cast<int64_t>(size);
            progress();
            return written;
          });
      if (results[static_cast<size_t>(part)].ok() && offset != start + length) {
        results[static_cast<size_t>(part)] = absl::UnavailableError(
            absl::StrCat("blob ", blob.digest.String(), ": a range ended after ", offset - start,
                         " of ", length, " bytes"));
      }
    });
  }
  for (std::thread& fetcher : fetchers) fetcher.join();
  // No range support is the answer that matters most (the caller falls back); then the first
  // failure.
  for (const absl::Status& result : results) {
    if (absl::IsFailedPrecondition(result)) return result;
  }
  for (const absl::Status& result : results) {
    if (!result.ok()) return result;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Puller::StageLayer(const Descriptor& layer, const Digest& diff_id,
                                               const Digest& chain_id, UnpackedLayer& result,
                                               base::WriteBehindSync* files_behind) {
  if (snapshots_.GetDriver() != snapshotter::Driver::kOverlay) return std::string();
  if (absl::StatusOr<snapshotter::Info> existing = snapshots_.Stat(chain_id.String());
      existing.ok() && existing->kind == snapshotter::Kind::kCommitted) {
    return std::string();
  }
  return UnpackIntoStaging(layer, diff_id, result, files_behind);
}

absl::StatusOr<std::string> Puller::UnpackIntoStaging(const Descriptor& layer,
                                                      const Digest& diff_id, UnpackedLayer& result,
                                                      base::WriteBehindSync* files_behind) {
  absl::StatusOr<std::string> staged = snapshots_.NewStagingDirectory();
  if (!staged.ok()) return staged.status();
  absl::StatusOr<UnpackedLayer> unpacked =
      images::UnpackLayer(content_.PathOf(layer.digest), *staged, WhiteoutStyle::kOverlay, &diff_id,
                          options_.inflate, files_behind);
  if (!unpacked.ok()) {
    (void)base::RemoveTree(*staged);
    return unpacked.status();  // the caller names the layer
  }
  result = *unpacked;
  return *staged;
}

absl::Status Puller::UnpackLayer(const Descriptor& layer, const Digest& diff_id,
                                 const Digest& chain_id, const std::string& parent,
                                 const StagedLayer* staged, PullReport* report) {
  return Shared("unpack:" + chain_id.String(), [&]() -> absl::Status {
    if (absl::StatusOr<snapshotter::Info> existing = snapshots_.Stat(chain_id.String());
        existing.ok() && existing->kind == snapshotter::Kind::kCommitted) {
      if (staged != nullptr) (void)base::RemoveTree(staged->directory);  // another pull was first
      return absl::OkStatus();
    }
    static std::atomic<uint64_t> counter{0};
    std::string key =
        absl::StrCat(kExtractPrefix, ::getpid(), "-", counter.fetch_add(1), "-", chain_id.Short());
    if (absl::StatusOr<std::vector<snapshotter::Mount>> prepared = snapshots_.Prepare(key, parent);
        !prepared.ok()) {
      return prepared.status();
    }
    auto discard = [&](absl::Status status) {
      (void)snapshots_.Remove(key);
      return status;
    };
    std::optional<snapshotter::Usage> measured;
    if (staged != nullptr) {
      if (absl::Status adopted = snapshots_.Adopt(key, staged->directory); !adopted.ok()) {
        (void)base::RemoveTree(staged->directory);
        return discard(adopted);
      }
      measured = staged->usage;
    } else {
      absl::StatusOr<UnpackedLayer> unpacked = UnpackInto(layer, diff_id, key);
      if (!unpacked.ok()) return discard(unpacked.status());
      Account(*unpacked, report);
    }
    auto commit_started = std::chrono::steady_clock::now();
    absl::Status committed =
        snapshots_.Commit(chain_id.String(), key, options_.layer_sync, measured);
    if (report != nullptr) {
      std::lock_guard lock(report_mutex_);
      report->commit_seconds += SecondsSince(commit_started);
    }
    // Another pull committed the same layer first: its snapshot serves both.
    if (absl::IsAlreadyExists(committed)) return discard(absl::OkStatus());
    if (!committed.ok()) return discard(committed);
    return absl::OkStatus();
  });
}

absl::StatusOr<UnpackedLayer> Puller::UnpackInto(const Descriptor& layer, const Digest& diff_id,
                                                 const std::string& key) {
  absl::StatusOr<std::string> directory = snapshots_.ContentDirectory(key);
  if (!directory.ok()) return directory.status();
  WhiteoutStyle style = snapshots_.GetDriver() == snapshotter::Driver::kOverlay
                            ? WhiteoutStyle::kOverlay
                            : WhiteoutStyle::kApply;
  absl::StatusOr<UnpackedLayer> unpacked = images::UnpackLayer(
      content_.PathOf(layer.digest), *directory, style, &diff_id, options_.inflate);
  if (!unpacked.ok()) return Annotate(unpacked.status(), "layer " + layer.digest.String());
  return unpacked;
}

absl::StatusOr<ImageRecord> Puller::Pull(const std::string& reference_text,
                                         const Credentials& credentials,
                                         const ProgressCallback& progress, PullReport* report) {
  std::shared_lock pulling(images_.CollectionLock());
  snapshotter::Snapshotter::SyncHold writing_layers(snapshots_);
  if (report != nullptr) report->began = std::chrono::steady_clock::now();
  absl::StatusOr<Reference> reference = ParseReference(reference_text);
  if (!reference.ok()) return reference.status();
  std::string context = absl::StrCat("pull ", reference->String());
  const std::string& repository = reference->path;
  std::string wanted = reference->digest ? reference->digest->String() : reference->tag;
  // Credentials from the request (kubelet's image pull secrets) win over configured ones.
  Credentials effective =
      credentials.Empty() ? options_.hosts.CredentialsFor(reference->domain) : credentials;

  // The first endpoint (a mirror, or the registry) that has the manifest serves the whole pull.
  std::unique_ptr<RegistryClient> chosen_client;
  absl::StatusOr<FetchedManifest> top = absl::NotFoundError("no endpoint");
  std::vector<std::string> tried;
  for (const RegistryEndpoint& endpoint : options_.hosts.EndpointsFor(reference->domain)) {
    RegistryClient::Options client_options;
    client_options.read_timeout = options_.progress_timeout;
    auto candidate = std::make_unique<RegistryClient>(endpoint, effective, client_options);
    top = candidate->FetchManifest(repository, wanted);
    if (top.ok()) {
      chosen_client = std::move(candidate);
      break;
    }
    tried.push_back(absl::StrCat(endpoint.Url(), ": ", top.status().message()));
    // A mirror that lacks the image or is down is skipped; refused credentials or a broken
    // manifest are answers, not absences.
    if (!absl::IsNotFound(top.status()) && !absl::IsUnavailable(top.status())) break;
  }
  if (!top.ok()) {
    std::string detail = tried.size() > 1
                             ? absl::StrCat(" (tried ", absl::StrJoin(tried, "; "), ")")
                             : std::string(absl::StrCat(": ", top.status().message()));
    return absl::Status(top.status().code(), absl::StrCat(context, detail));
  }
  RegistryClient& client = *chosen_client;
  std::vector<Digest> blobs;
  FetchedManifest chosen = *top;
  if (IsIndex(top->media_type, top->body)) {
    absl::StatusOr<ImageIndex> index = ParseIndex(top->body);
    if (!index.ok()) return Annotate(index.status(), context);
    absl::StatusOr<Descriptor> entry = SelectPlatform(*index, options_.platform);
    if (!entry.ok()) return Annotate(entry.status(), context);
    absl::StatusOr<FetchedManifest> manifest =
        client.FetchManifest(repository, entry->digest.String());
    if (!manifest.ok()) return Annotate(manifest.status(), context);
    if (absl::StatusOr<int64_t> stored =
            content_.IngestBytes(top->digest, top->body, top->media_type);
        !stored.ok()) {
      return Annotate(stored.status(), context);
    }
    blobs.push_back(top->digest);
    chosen = std::move(*manifest);
  }
  if (absl::StatusOr<int64_t> stored =
          content_.IngestBytes(chosen.digest, chosen.body, chosen.media_type);
      !stored.ok()) {
    return Annotate(stored.status(), context);
  }
  absl::StatusOr<ImageManifest> manifest = ParseManifest(chosen.body);
  if (!manifest.ok()) return Annotate(manifest.status(), context);
  if (absl::Status fetched = Download(client, repository, manifest->config, nullptr, nullptr);
      !fetched.ok()) {
    return Annotate(fetched, context + ": config");
  }
  for (const Descriptor& layer : manifest->layers) {
    if (absl::StatusOr<LayerCompression> compression = CompressionOf(layer.media_type);
        !compression.ok()) {
      return Annotate(compression.status(), context);
    }
  }

  // The diff ids, to unpack each layer as soon as it is downloaded (overlay); a config that
  // does not match the manifest is reported by UnpackAndRecord, with nothing staged.
  std::vector<Digest> diff_ids;
  if (absl::StatusOr<std::string> config_json = content_.ReadAll(manifest->config.digest);
      config_json.ok()) {
    if (absl::StatusOr<ImageConfig> config = ParseImageConfig(*config_json);
        config.ok() && config->diff_ids.size() == manifest->layers.size()) {
      diff_ids = config->diff_ids;
    }
  }
  std::vector<Digest> chain_ids = ChainIds(diff_ids);

  // Downloads, a few at a time, each layer unpacked into staging right after; the first failure
  // is reported. Largest first: the largest layer's download and unpack are the pull's
  // critical path, and the small ones fit around it.
  std::vector<size_t> order(manifest->layers.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return manifest->layers[a].size > manifest->layers[b].size;
  });
  std::atomic<size_t> next{0};
  std::mutex failure_mutex;
  absl::Status failure;
  std::map<std::string, StagedLayer> staged;  // by layer digest
  // Synced at commit: the disk writes the staged files while they are unpacked (see
  // PullOptions::sync_behind_bytes).
  base::UniqueFd layers_filesystem;
  std::optional<base::WriteBehindSync> files_behind;
  if (options_.layer_sync == snapshotter::Sync::kAtCommit &&
      snapshots_.GetDriver() == snapshotter::Driver::kOverlay) {
    layers_filesystem =
        base::UniqueFd(::open(snapshots_.Root().c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (layers_filesystem) {
      files_behind.emplace(layers_filesystem.Get(), options_.sync_behind_bytes,
                           base::WriteBehindSync::Scope::kFilesystem);
    }
  }
  base::WriteBehindSync* files_behind_pointer = files_behind ? &*files_behind : nullptr;
  auto remove_staged = [&] {
    for (const auto& [digest, layer] : staged) (void)base::RemoveTree(layer.directory);
  };
  auto worker = [&] {
    for (size_t position = next++; position < order.size(); position = next++) {
      size_t i = order[position];
      const Descriptor& layer = manifest->layers[i];
      bool present = content_.Has(layer.digest);
      auto download_started = std::chrono::steady_clock::now();
      auto downloaded = download_started;
      UnpackedLayer unpacked;
      // A large layer is unpacked while it downloads (overlay); else, or when that did not
      // happen, downloaded and then unpacked from the content store.
      absl::StatusOr<std::string> streamed = std::string();
      if (!present && !diff_ids.empty() && options_.stream_min_bytes > 0 &&
          layer.size >= options_.stream_min_bytes) {
        streamed = DownloadAndStage(client, repository, layer, diff_ids[i], chain_ids[i], progress,
                                    report, unpacked, downloaded, files_behind_pointer);
      }
      absl::Status done = streamed.status();
      if (done.ok() && streamed->empty()) {
        done = Download(client, repository, layer, progress, report);
        downloaded = std::chrono::steady_clock::now();
      }
      if (done.ok() && !present && report != nullptr) {
        std::lock_guard lock(report_mutex_);
        report->layers_fetched += 1;
        report->streamed_layers += streamed.ok() && !streamed->empty() ? 1 : 0;
        report->bytes_fetched += layer.size;
        // A streamed layer's download is counted by DownloadAndStage, without its unpack.
        if (!streamed.ok() || streamed->empty()) {
          report->download_seconds += SecondsSince(download_started);
        }
      }
      if (done.ok() && !diff_ids.empty()) {
        absl::StatusOr<std::string> directory =
            !streamed->empty()
                ? *streamed
                : StageLayer(layer, diff_ids[i], chain_ids[i], unpacked, files_behind_pointer);
        // Measured here, while other layers still unpack, rather than by its commit, which
        // waits for the last layer.
        snapshotter::Usage usage;
        if (directory.ok() && !directory->empty()) {
          base::TreeUsage measured = base::MeasureTree(*directory);
          usage = {measured.bytes, measured.inodes};
          Account(unpacked, report);
        }
        if (directory.ok() && !present && report != nullptr) {
          auto since_began = [&](std::chrono::steady_clock::time_point moment) {
            return std::chrono::duration<double>(moment - report->began).count();
          };
          std::lock_guard lock(report_mutex_);
          report->layers.push_back(
              {layer.digest.Short(), layer.size, since_began(download_started),
               since_began(downloaded),
               directory->empty() ? 0.0 : since_began(std::chrono::steady_clock::now())});
        }
        if (directory.ok() && !directory->empty()) {
          std::lock_guard lock(failure_mutex);
          // The same blob twice in one image: the second staging is not needed.
          if (!staged.emplace(layer.digest.String(), StagedLayer{*directory, usage}).second) {
            (void)base::RemoveTree(*directory);
          }
        }
        done = directory.status();
      }
      if (!done.ok()) {
        std::lock_guard lock(failure_mutex);
        if (failure.ok()) failure = Annotate(done, "layer " + layer.digest.String());
        return;
      }
    }
  };
  std::vector<std::thread> workers;
  int count = std::max(1, std::min<int>(options_.max_concurrent_downloads,
                                        static_cast<int>(manifest->layers.size())));
  for (int i = 0; i < count; ++i) workers.emplace_back(worker);
  for (std::thread& thread : workers) thread.join();
  if (files_behind) {
    // A write-back error seen by a background syncfs is not reported again to the commits'.
    if (absl::Status synced = files_behind->Finish(); !synced.ok() && failure.ok()) {
      failure =
          absl::Status(synced.code(), absl::StrCat(snapshots_.Root(), ": ", synced.message()));
    }
  }
  if (!failure.ok()) {
    remove_staged();
    return Annotate(failure, context);
  }

  std::vector<std::string> repo_tags;
  if (!reference->tag.empty())
    repo_tags.push_back(absl::StrCat(reference->Name(), ":", reference->tag));
  // The digest a tag resolved to: the index's, when the registry served one.
  std::vector<std::string> repo_digests = {
      absl::StrCat(reference->Name(), "@", top->digest.String())};
  absl::StatusOr<ImageRecord> image = UnpackAndRecordHeld(
      chosen.digest, chosen.media_type, repo_tags, repo_digests, blobs, staged, report);
  if (!image.ok()) {
    remove_staged();  // what was not adopted (RemoveTree of a moved one finds nothing)
    return Annotate(image.status(), context);
  }
  return image;
}

Puller::Rebuilt Puller::RebuildUnsyncedLayers() {
  Rebuilt rebuilt;
  std::vector<snapshotter::Info> unsynced = snapshots_.UnsyncedFromEarlierBoots();
  if (unsynced.empty()) return rebuilt;
  // Where each chain id's layer is: its blob and diff id, from any image that has it.
  struct Source {
    Descriptor layer;
    Digest diff_id;
  };
  std::map<std::string, Source> sources;
  for (const ImageRecord& image : images_.List()) {
    absl::StatusOr<std::string> manifest_json = content_.ReadAll(image.manifest_digest);
    if (!manifest_json.ok()) continue;
    absl::StatusOr<ImageManifest> manifest = ParseManifest(*manifest_json);
    absl::StatusOr<ImageConfig> config = ParseImageConfig(image.config_json);
    if (!manifest.ok() || !config.ok() || config->diff_ids.size() != manifest->layers.size()) {
      continue;
    }
    std::vector<Digest> chain_ids = ChainIds(config->diff_ids);
    for (size_t i = 0; i < chain_ids.size(); ++i) {
      if (content_.Has(manifest->layers[i].digest)) {
        sources.try_emplace(chain_ids[i].String(),
                            Source{manifest->layers[i], config->diff_ids[i]});
      }
    }
  }
  for (const snapshotter::Info& info : unsynced) {
    auto found = sources.find(info.key);
    if (found == sources.end()) {
      rebuilt.failures.push_back(
          absl::StrCat("layer ", info.key,
                       ": no image holds its blob any more; remove the images built on it "
                       "and pull them again"));
      continue;
    }
    const Source& source = found->second;
    UnpackedLayer unpacked;
    absl::StatusOr<std::string> staged = UnpackIntoStaging(source.layer, source.diff_id, unpacked);
    absl::Status status = staged.status();
    if (staged.ok()) {
      status = snapshots_.ReplaceTree(info.key, *staged);
      if (!status.ok()) (void)base::RemoveTree(*staged);
    }
    if (status.ok()) {
      rebuilt.layers += 1;
    } else {
      rebuilt.failures.push_back(absl::StrCat(
          "layer ", info.key, " from blob ", source.layer.digest.String(), ": ", status.message()));
    }
  }
  return rebuilt;
}

absl::StatusOr<ImageRecord> Puller::UnpackAndRecord(
    const Digest& manifest_digest, const std::string& manifest_media_type,
    const std::vector<std::string>& repo_tags, const std::vector<std::string>& repo_digests,
    const std::vector<Digest>& extra_blobs, const std::map<std::string, StagedLayer>& staged,
    PullReport* report) {
  std::shared_lock unpacking(images_.CollectionLock());
  snapshotter::Snapshotter::SyncHold writing_layers(snapshots_);
  return UnpackAndRecordHeld(manifest_digest, manifest_media_type, repo_tags, repo_digests,
                             extra_blobs, staged, report);
}

absl::StatusOr<ImageRecord> Puller::UnpackAndRecordHeld(
    const Digest& manifest_digest, const std::string& manifest_media_type,
    const std::vector<std::string>& repo_tags, const std::vector<std::string>& repo_digests,
    const std::vector<Digest>& extra_blobs, const std::map<std::string, StagedLayer>& staged,
    PullReport* report) {
  absl::StatusOr<std::string> manifest_json = content_.ReadAll(manifest_digest);
  if (!manifest_json.ok()) return manifest_json.status();
  absl::StatusOr<ImageManifest> manifest = ParseManifest(*manifest_json);
  if (!manifest.ok()) return manifest.status();
  absl::StatusOr<std::string> config_json = content_.ReadAll(manifest->config.digest);
  if (!config_json.ok()) return config_json.status();
  absl::StatusOr<ImageConfig> config = ParseImageConfig(*config_json);
  if (!config.ok()) return config.status();
  if (config->diff_ids.size() != manifest->layers.size()) {
    return absl::InvalidArgumentError(absl::StrCat("the manifest has ", manifest->layers.size(),
                                                   " layers but the config ",
                                                   config->diff_ids.size(), " diff ids"));
  }
  if (manifest->layers.empty()) return absl::InvalidArgumentError("the image has no layers");
  std::vector<Digest> blobs = extra_blobs;
  blobs.push_back(manifest_digest);
  blobs.push_back(manifest->config.digest);
  std::vector<Digest> chain_ids = ChainIds(config->diff_ids);
  int64_t size = manifest->config.size + static_cast<int64_t>(manifest_json->size());
  for (size_t i = 0; i < manifest->layers.size(); ++i) {
    if (absl::StatusOr<LayerCompression> compression =
            CompressionOf(manifest->layers[i].media_type);
        !compression.ok()) {
      return compression.status();
    }
    if (!content_.Has(manifest->layers[i].digest)) {
      return absl::NotFoundError(absl::StrCat("layer ", manifest->layers[i].digest.String(),
                                              " is not in the content store"));
    }
    std::string parent = i == 0 ? "" : chain_ids[i - 1].String();
    auto found = staged.find(manifest->layers[i].digest.String());
    // A blob that appears twice is staged once: the first use adopts it.
    const StagedLayer* staged_layer = nullptr;
    if (found != staged.end() && ::access(found->second.directory.c_str(), F_OK) == 0) {
      staged_layer = &found->second;
    }
    absl::Status unpacked = UnpackLayer(manifest->layers[i], config->diff_ids[i], chain_ids[i],
                                        parent, staged_layer, report);
    if (!unpacked.ok()) return unpacked;
    blobs.push_back(manifest->layers[i].digest);
    size += manifest->layers[i].size;
  }
  ImageRecord image{manifest->config.digest,
                    manifest_digest,
                    manifest_media_type,
                    size,
                    chain_ids.back(),
                    *config_json,
                    NowSeconds(),
                    repo_tags,
                    repo_digests,
                    blobs};
  if (absl::Status stored = images_.Put(image); !stored.ok()) return stored;
  return images_.Get(image.id);
}

}  // namespace kapal::images
