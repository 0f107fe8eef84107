#include "images/unpack.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "base/unique_fd.h"
#include "images/decompress.h"

namespace kapal::images {

namespace {

constexpr char kWhiteoutPrefix[] = ".wh.";
constexpr char kOpaqueMarker[] = ".wh..wh..opq";

struct ArchiveReader {
  archive* handle = archive_read_new();
  ~ArchiveReader() { archive_read_free(handle); }
};
struct ArchiveDiskWriter {
  archive* handle = archive_write_disk_new();
  ~ArchiveDiskWriter() { archive_write_free(handle); }
};

// The unpacking thread's CPU time (user and system): what each part of an unpack costs,
// without the time it waits for a download it follows or for a core.
struct ThreadCpuClock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<ThreadCpuClock>;
  static constexpr bool is_steady = true;
  static time_point now() noexcept {
    timespec now{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return time_point(duration(int64_t{now.tv_sec} * 1'000'000'000 + now.tv_nsec));
  }
};
using Clock = ThreadCpuClock;

// Tells WORKER, which waits on WAKE for work or for STOPPING (both under MUTEX), to stop, and
// waits for it to end.
void StopWorker(std::mutex& mutex, bool& stopping, std::condition_variable& wake,
                std::thread& worker) {
  {
    std::lock_guard lock(mutex);
    stopping = true;
  }
  wake.notify_one();
  if (worker.joinable()) worker.join();
}

// Hashes the uncompressed tar on a thread of its own, at most one piece behind the inflate: the
// diff id's SHA-256 is a sixth of an unpack's CPU, and off the unpacking thread it no longer
// lengthens the largest layer's unpack, which sets a pull's length once the other layers are
// done and a core is free.
class BackgroundHasher {
 public:
  explicit BackgroundHasher(Hasher hasher)
      : hasher_(std::move(hasher)), thread_([this] { Run(); }) {}
  ~BackgroundHasher() { Stop(); }
  BackgroundHasher(const BackgroundHasher&) = delete;
  BackgroundHasher& operator=(const BackgroundHasher&) = delete;

  // Hashes DATA next, once the piece before is hashed (its bytes may be reused when this
  // returns). DATA must stay as it is until the next Submit or Finish.
  void Submit(const char* data, size_t size) {
    std::unique_lock lock(mutex_);
    hashed_.wait(lock, [&] { return pending_ == nullptr; });
    pending_ = data;
    pending_size_ = size;
    work_.notify_one();
  }
  // The digest of everything submitted, and the hashing thread's CPU time.
  std::pair<Digest, Clock::duration> Finish() {
    Stop();
    return {hasher_.Finish(), cpu_};
  }

 private:
  void Run() {
    auto started = Clock::now();
    std::unique_lock lock(mutex_);
    for (;;) {
      work_.wait(lock, [&] { return pending_ != nullptr || stopping_; });
      if (pending_ == nullptr) break;
      const char* data = pending_;
      size_t size = pending_size_;
      lock.unlock();
      hasher_.Update(data, size);
      lock.lock();
      pending_ = nullptr;
      hashed_.notify_all();
    }
    cpu_ = Clock::now() - started;
  }
  void Stop() { StopWorker(mutex_, stopping_, work_, thread_); }

  Hasher hasher_;
  std::mutex mutex_;
  std::condition_variable work_;
  std::condition_variable hashed_;
  const char* pending_ = nullptr;  // submitted and not yet hashed
  size_t pending_size_ = 0;
  bool stopping_ = false;
  Clock::duration cpu_{};
  std::thread thread_;
};

// Uncompressed bytes from the layer stream, inflated on a thread of their own up to
// kPieces - 1 pieces ahead of the tar reader and hashed on their way (the hasher at most one
// piece behind the inflate). A layer's inflate, its diff id and its files then use up to three
// cores: when few layers are left to unpack (a pull's end, a one-layer image) fewer cores idle
// (a one-layer image of a 134 MB layer: 1.35 -> 1.22 s).
class InflatingSource {
 public:
  InflatingSource(LayerStream* from, Hasher sha256)
      : stream_(from), hasher_(std::move(sha256)), thread_([this] { Run(); }) {}
  ~InflatingSource() { Stop(); }  // before the buffers and the hasher go
  InflatingSource(const InflatingSource&) = delete;
  InflatingSource& operator=(const InflatingSource&) = delete;

  // The next piece of the tar (empty at its end). The piece returned before is given back to
  // the inflate here: libarchive reads a piece only until it asks for the next.
  absl::StatusOr<absl::string_view> Next() {
    std::unique_lock lock(mutex_);
    released_ = taken_;
    space_.notify_one();
    ready_.wait(lock, [&] { return produced_ > taken_ || failure_ || ended_; });
    if (produced_ == taken_) {
      if (failure_) return *failure_;
      return absl::string_view();  // the end, asked for again
    }
    size_t slot = taken_ % kPieces;
    ++taken_;
    return absl::string_view(buffers_[slot].data(), sizes_[slot]);
  }

  // Once the end was read: the diff id, and the inflating and hashing threads' CPU time.
  struct Totals {
    Digest diff_id;
    int64_t bytes = 0;
    Clock::duration inflate{};
    Clock::duration hash{};
  };
  Totals Finish() {
    Stop();
    auto [diff_id, hash_cpu] = hasher_.Finish();
    return {diff_id, bytes_, inflate_cpu_, hash_cpu};
  }

  absl::Status failure;  // what ReadDecompressed last failed with, for libarchive's caller

 private:
  static constexpr size_t kPieces = 4;
  static constexpr size_t kPieceBytes = 512 << 10;

  void Run() {
    auto started = Clock::now();
    for (uint64_t piece = 0;; ++piece) {
      {
        std::unique_lock lock(mutex_);
        // A slot is free once the reader moved past its piece; the hasher is done with it
        // then too (Submit returns once the piece before the submitted one is hashed).
        space_.wait(lock, [&] { return stopping_ || piece < released_ + kPieces; });
        if (stopping_) break;
      }
      size_t slot = piece % kPieces;
      absl::StatusOr<size_t> n = stream_->Read(buffers_[slot].data(), kPieceBytes);
      if (n.ok() && *n > 0) hasher_.Submit(buffers_[slot].data(), *n);
      std::lock_guard lock(mutex_);
      if (!n.ok()) {
        failure_ = n.status();
      } else if (*n == 0) {
        ended_ = true;
      } else {
        sizes_[slot] = *n;
        bytes_ += static_cast<int64_t>(*n);
        produced_ = piece + 1;
      }
      ready_.notify_one();
      if (!n.ok() || *n == 0) break;
    }
    inflate_cpu_ = Clock::now() - started;
  }
  void Stop() { StopWorker(mutex_, stopping_, space_, thread_); }

  LayerStream* stream_;
  std::vector<char> buffers_[kPieces] = {
      std::vector<char>(kPieceBytes), std::vector<char>(kPieceBytes),
      std::vector<char>(kPieceBytes), std::vector<char>(kPieceBytes)};
  size_t sizes_[kPieces] = {};
  BackgroundHasher hasher_;  // after the buffers: it stops before they go
  std::mutex mutex_;
  std::condition_variable space_;  // the inflate waits for a free slot
  std::condition_variable ready_;  // the reader waits for a piece
  uint64_t produced_ = 0;          // pieces inflated
  uint64_t taken_ = 0;             // pieces handed to the reader
  uint64_t released_ = 0;          // pieces the reader is done with
  std::optional<absl::Status> failure_;
  bool ended_ = false;
  bool stopping_ = false;
  int64_t bytes_ = 0;
  Clock::duration inflate_cpu_{};
  std::thread thread_;  // last: it starts once everything above is made
};

la_ssize_t ReadDecompressed(archive* reader, void* client, const void** data) {
  auto* source = static_cast<InflatingSource*>(client);
  absl::StatusOr<absl::string_view> piece = source->Next();
  if (!piece.ok()) {
    source->failure = piece.status();
    archive_set_error(reader, EIO, "%s", std::string(piece.status().message()).c_str());
    return -1;
  }
  *data = piece->data();
  return static_cast<la_ssize_t>(piece->size());
}

double Seconds(Clock::duration duration) { return std::chrono::duration<double>(duration).count(); }

// The entry's path as clean components, or an error when it escapes.
absl::StatusOr<std::vector<std::string>> CleanPath(absl::string_view raw) {
  std::vector<std::string> parts;
  for (absl::string_view part : absl::StrSplit(raw, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    if (part == "..") {
      return absl::InvalidArgumentError(absl::StrCat("layer entry \"", raw, "\" leaves the root"));
    }
    parts.emplace_back(part);
  }
  return parts;
}

// Refuses a path whose existing parent directories include a symlink: writing through it could
// land outside ROOT (a layer that plants `lib -> /etc` and then writes `lib/passwd`). Parents
// already seen to be real directories are remembered (a layer's entries share most of their
// parents), and forgotten when a later entry could have replaced one.
class ParentCheck {
 public:
  explicit ParentCheck(std::string root) : root_(std::move(root)) {}

  absl::Status Check(const std::vector<std::string>& parts, absl::string_view raw) {
    std::string relative;
    for (size_t i = 0; i + 1 < parts.size(); ++i) {
      if (i > 0) relative += '/';
      relative += parts[i];
      if (directories_.contains(relative)) continue;
      std::string path = absl::StrCat(root_, "/", relative);
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0) {
        if (errno == ENOENT) return absl::OkStatus();
        return base::ErrnoStatus(errno, "stat " + path);
      }
      if (S_ISLNK(st.st_mode)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "layer entry \"", raw, "\" would be written through the symlink \"", relative, "\""));
      }
      if (!S_ISDIR(st.st_mode)) {
        return absl::InvalidArgumentError(
            absl::StrCat("layer entry \"", raw, "\": a parent is not a directory"));
      }
      directories_.insert(relative);
    }
    return absl::OkStatus();
  }

  // RELATIVE was written (or removed) as something that may not be a directory.
  void Changed(const std::string& relative) {
    if (directories_.contains(relative)) directories_.clear();
  }
  void Forget() { directories_.clear(); }

 private:
  std::string root_;
  absl::flat_hash_set<std::string> directories_;
};

absl::Status EnsureDirectory(const std::string& path) { return base::MakeDirectories(path, 0755); }

// Overlay form of a whiteout: a 0/0 character device where the deleted name was.
absl::Status MakeOverlayWhiteout(const std::string& path) {
  ::unlink(path.c_str());
  if (::mknod(path.c_str(), S_IFCHR | 0000, makedev(0, 0)) != 0) {
    return base::ErrnoStatus(errno, "mknod whiteout " + path);
  }
  return absl::OkStatus();
}

absl::Status MakeOpaque(const std::string& directory) {
  if (::lsetxattr(directory.c_str(), "trusted.overlay.opaque", "y", 1, 0) != 0) {
    return base::ErrnoStatus(errno, "set opaque xattr on " + directory);
  }
  return absl::OkStatus();
}

// Native form of an opaque directory: drop what lower layers put there, keep this layer's.
absl::Status ClearLowerEntries(const std::string& directory, const std::string& relative,
                               const std::set<std::string>& created) {
  DIR* dir = ::opendir(directory.c_str());
  if (dir == nullptr)
    return errno == ENOENT ? absl::OkStatus() : base::ErrnoStatus(errno, directory);
  std::vector<std::string> names;
  while (dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(dir);
  for (const std::string& name : names) {
    std::string child = relative.empty() ? name : absl::StrCat(relative, "/", name);
    if (created.contains(child)) continue;
    if (absl::Status removed = base::RemoveTree(absl::StrCat(directory, "/", name));
        !removed.ok()) {
      return removed;
    }
  }
  return absl::OkStatus();
}

// An existing ENTRY at TARGET of the other kind (directory / not) when that is refused.
absl::Status CheckKindKept(const std::string& target, archive_entry* entry, absl::string_view raw) {
  struct stat st {};
  if (::lstat(target.c_str(), &st) != 0) return absl::OkStatus();
  bool entry_is_dir = archive_entry_filetype(entry) == AE_IFDIR;
  if (S_ISDIR(st.st_mode) == entry_is_dir) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("cannot overwrite ", S_ISDIR(st.st_mode) ? "directory" : "non-directory", " \"",
                   raw, "\" with ", entry_is_dir ? "directory" : "non-directory"));
}

absl::StatusOr<UnpackedLayer> UnpackStream(absl::StatusOr<std::unique_ptr<LayerStream>> stream,
                                           const std::string& blob_path, const std::string& root,
                                           WhiteoutStyle style, const Digest* expected_diff_id,
                                           Clock::time_point started,
                                           const ExtractOptions& extract = {},
                                           base::WriteBehindSync* write_behind = nullptr) {
  if (!stream.ok()) return stream.status();
  absl::StatusOr<Hasher> hasher = Hasher::ForAlgorithm("sha256");
  if (!hasher.ok()) return hasher.status();
  InflatingSource source(stream->get(), std::move(*hasher));

  ArchiveReader tar;
  archive_read_support_format_tar(tar.handle);
  if (archive_read_open(tar.handle, &source, nullptr, ReadDecompressed, nullptr) != ARCHIVE_OK) {
    if (!source.failure.ok()) return source.failure;
    return absl::InvalidArgumentError(
        absl::StrCat("layer ", blob_path, ": not a tar: ", archive_error_string(tar.handle)));
  }
  ArchiveDiskWriter disk;
  // Owners by number (the image's uids, not this host's names). Paths are made safe by
  // CleanPath and ParentCheck before they reach libarchive, and handed to it as
  // ROOT/relative, so its own absolute-path refusal cannot be used; its '..' check stays as a
  // second guard. No ARCHIVE_EXTRACT_UNLINK: it unlinks every path before creating it, which in
  // a fresh layer (the usual case) fails 13,500 times for the realistic image's 13,500 files;
  // libarchive replaces what is in the way all the same when its create finds it (a lower
  // layer's file in a native snapshot, an entry twice in one layer).
  archive_write_disk_set_options(disk.handle, ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM |
                                                  ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_XATTR |
                                                  ARCHIVE_EXTRACT_SECURE_NODOTDOT);

  UnpackedLayer result;
  result.format = (*stream)->Format();
  std::set<std::string> created;
  ParentCheck parents(root);
  archive_entry* entry = nullptr;
  for (;;) {
    int r = archive_read_next_header(tar.handle, &entry);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      if (!source.failure.ok()) return source.failure;
      return absl::InvalidArgumentError(
          absl::StrCat("layer ", blob_path, ": ", archive_error_string(tar.handle)));
    }
    ++result.entries;
    std::string raw = archive_entry_pathname(entry);
    absl::StatusOr<std::vector<std::string>> parts = CleanPath(raw);
    if (!parts.ok()) return parts.status();
    if (parts->empty()) continue;  // the root itself
    std::string relative = absl::StrJoin(*parts, "/");
    std::string base_name = parts->back();
    std::string parent_relative = absl::StrJoin(parts->begin(), parts->end() - 1, "/");
    std::string parent = parent_relative.empty() ? root : absl::StrCat(root, "/", parent_relative);
    if (absl::Status checked = parents.Check(*parts, raw); !checked.ok()) return checked;

    if (style != WhiteoutStyle::kNone && absl::StartsWith(base_name, kWhiteoutPrefix)) {
      if (absl::Status made = EnsureDirectory(parent); !made.ok()) return made;
      if (base_name == kOpaqueMarker) {
        absl::Status done = style == WhiteoutStyle::kOverlay
                                ? MakeOpaque(parent)
                                : ClearLowerEntries(parent, parent_relative, created);
        if (!done.ok()) return done;
        parents.Forget();
      } else {
        std::string target =
            absl::StrCat(parent, "/", base_name.substr(sizeof(kWhiteoutPrefix) - 1));
        absl::Status done = style == WhiteoutStyle::kOverlay ? MakeOverlayWhiteout(target)
                                                             : base::RemoveTree(target);
        if (!done.ok()) return done;
        parents.Forget();
      }
      continue;
    }

    if (const char* link = archive_entry_hardlink(entry); link != nullptr) {
      absl::StatusOr<std::vector<std::string>> target = CleanPath(link);
      if (!target.ok()) return target.status();
      if (absl::Status checked = parents.Check(*target, link); !checked.ok()) return checked;
      archive_entry_set_hardlink(entry,
                                 absl::StrCat(root, "/", absl::StrJoin(*target, "/")).c_str());
    }
    // A layer must not forge overlay metadata (opaque, redirect) through its own xattrs.
    if (archive_entry_xattr_reset(entry) > 0) {
      std::vector<std::tuple<std::string, std::string>> kept;
      const char* name = nullptr;
      const void* value = nullptr;
      size_t size = 0;
      while (archive_entry_xattr_next(entry, &name, &value, &size) == ARCHIVE_OK) {
        if (!absl::StartsWith(name, "trusted.overlay.")) {
          kept.emplace_back(name, std::string(static_cast<const char*>(value), size));
        }
      }
      archive_entry_xattr_clear(entry);
      for (const auto& [key, data] : kept) {
        archive_entry_xattr_add_entry(entry, key.c_str(), data.data(), data.size());
      }
    }
    if (archive_entry_filetype(entry) != AE_IFDIR) parents.Changed(relative);
    std::string target = absl::StrCat(root, "/", relative);
    if (extract.no_overwrite_dir_non_dir) {
      if (absl::Status kept = CheckKindKept(target, entry, raw); !kept.ok()) return kept;
    }
    if (extract.owner.has_value()) {
      archive_entry_set_uid(entry, extract.owner->first);
      archive_entry_set_gid(entry, extract.owner->second);
      archive_entry_set_uname(entry, nullptr);
      archive_entry_set_gname(entry, nullptr);
    }
    archive_entry_set_pathname(entry, target.c_str());
    if (archive_write_header(disk.handle, entry) != ARCHIVE_OK) {
      return absl::InvalidArgumentError(
          absl::StrCat("layer entry \"", raw, "\": ", archive_error_string(disk.handle)));
    }
    const void* block = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    for (;;) {
      int data = archive_read_data_block(tar.handle, &block, &size, &offset);
      if (data == ARCHIVE_EOF) break;
      if (data != ARCHIVE_OK) {
        if (!source.failure.ok()) return source.failure;
        return absl::InvalidArgumentError(
            absl::StrCat("layer entry \"", raw, "\": ", archive_error_string(tar.handle)));
      }
      if (archive_write_data_block(disk.handle, block, size, offset) != ARCHIVE_OK) {
        return absl::InternalError(
            absl::StrCat("write \"", raw, "\": ", archive_error_string(disk.handle)));
      }
      if (write_behind != nullptr) write_behind->Wrote(static_cast<int64_t>(size));
    }
    if (archive_write_finish_entry(disk.handle) != ARCHIVE_OK) {
      return absl::InternalError(
          absl::StrCat("finish \"", raw, "\": ", archive_error_string(disk.handle)));
    }
    created.insert(relative);
  }
  // The tar's end-of-archive blocks may be followed by padding: hash all of it.
  for (;;) {
    absl::StatusOr<absl::string_view> piece = source.Next();
    if (!piece.ok()) return piece.status();
    if (piece->empty()) break;
  }
  InflatingSource::Totals totals = source.Finish();
  result.diff_id = totals.diff_id;
  result.uncompressed_bytes = totals.bytes;
  result.inflate_seconds = Seconds(totals.inflate);
  result.hash_seconds = Seconds(totals.hash);
  result.write_seconds = Seconds(Clock::now() - started);  // this thread no longer inflates
  if (expected_diff_id != nullptr && result.diff_id != *expected_diff_id) {
    return absl::DataLossError(
        absl::StrCat("layer ", blob_path, ": uncompressed digest ", result.diff_id.String(),
                     " does not match the config's diff id ", expected_diff_id->String()));
  }
  return result;
}

}  // namespace

absl::StatusOr<UnpackedLayer> UnpackLayer(const std::string& blob_path, const std::string& root,
                                          WhiteoutStyle style, const Digest* expected_diff_id,
                                          InflateEngine engine,
                                          base::WriteBehindSync* write_behind) {
  auto started = Clock::now();
  return UnpackStream(LayerStream::Open(blob_path, engine), blob_path, root, style,
                      expected_diff_id, started, {}, write_behind);
}

absl::StatusOr<UnpackedLayer> UnpackLayerFrom(std::unique_ptr<ByteSource> source,
                                              const std::string& name, const std::string& root,
                                              WhiteoutStyle style, const Digest* expected_diff_id,
                                              InflateEngine engine,
                                              base::WriteBehindSync* write_behind) {
  auto started = Clock::now();
  return UnpackStream(LayerStream::FromSource(std::move(source), name, engine), name, root, style,
                      expected_diff_id, started, {}, write_behind);
}

absl::StatusOr<UnpackedLayer> ExtractArchive(const std::string& path, const std::string& root,
                                             const ExtractOptions& options) {
  auto started = Clock::now();
  return UnpackStream(LayerStream::Open(path, InflateEngine::kIsal), path, root,
                      WhiteoutStyle::kNone, nullptr, started, options);
}

}  // namespace kapal::images
