#include "builder/layer_diff.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <isa-l/igzip_lib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <memory>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/files.h"
#include "base/unique_fd.h"

namespace kapal::builder {

namespace {

constexpr char kLayerMediaType[] = "application/vnd.oci.image.layer.v1.tar+gzip";
constexpr size_t kBufferSize = 1 << 20;

// The tar stream's sink: hashes the uncompressed bytes (the diff id), gzips them with ISA-L and
// hands the result to the blob writer.
class GzipBlobSink {
 public:
  explicit GzipBlobSink(images::BlobWriter& writer)
      : writer_(writer),
        hasher_(*images::Hasher::ForAlgorithm("sha256")),
        level_buffer_(ISAL_DEF_LVL1_DEFAULT),
        out_(kBufferSize) {
    isal_deflate_init(&stream_);
    stream_.level = 1;
    stream_.level_buf = level_buffer_.data();
    stream_.level_buf_size = static_cast<uint32_t>(level_buffer_.size());
    stream_.gzip_flag = IGZIP_GZIP;
  }

  absl::Status Write(const void* data, size_t size) {
    hasher_.Update(data, size);
    uncompressed_ += static_cast<int64_t>(size);
    return Deflate(static_cast<const uint8_t*>(data), size, /*end=*/false);
  }

  absl::Status Finish() { return Deflate(nullptr, 0, /*end=*/true); }
  images::Digest DiffId() { return hasher_.Finish(); }
  int64_t Uncompressed() const { return uncompressed_; }

 private:
  absl::Status Deflate(const uint8_t* data, size_t size, bool end) {
    stream_.next_in = const_cast<uint8_t*>(data);
    stream_.avail_in = static_cast<uint32_t>(size);
    stream_.end_of_stream = end ? 1 : 0;
    stream_.flush = NO_FLUSH;
    do {
      stream_.next_out = out_.data();
      stream_.avail_out = static_cast<uint32_t>(out_.size());
      if (int rc = isal_deflate(&stream_); rc != COMP_OK) {
        return absl::InternalError(absl::StrCat("gzip compression failed (isal_deflate ", rc, ")"));
      }
      size_t produced = out_.size() - stream_.avail_out;
      if (produced > 0) {
        if (absl::Status written =
                writer_.Write(reinterpret_cast<const char*>(out_.data()), produced);
            !written.ok()) {
          return written;
        }
      }
    } while (stream_.avail_in > 0 || (end && stream_.internal_state.state != ZSTATE_END));
    return absl::OkStatus();
  }

  images::BlobWriter& writer_;
  images::Hasher hasher_;
  std::vector<uint8_t> level_buffer_;
  std::vector<uint8_t> out_;
  isal_zstream stream_{};
  int64_t uncompressed_ = 0;
};

struct ArchiveDeleter {
  void operator()(archive* a) const { archive_write_free(a); }
};
struct EntryDeleter {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};

struct SinkState {
  GzipBlobSink* sink;
  absl::Status status;
};

la_ssize_t WriteCallback(archive*, void* client, const void* buffer, size_t length) {
  auto* state = static_cast<SinkState*>(client);
  if (absl::Status written = state->sink->Write(buffer, length); !written.ok()) {
    state->status = written;
    return -1;
  }
  return static_cast<la_ssize_t>(length);
}

class TreeWriter {
 public:
  TreeWriter(const std::string& upper, archive* out, const std::set<std::string>& mount_points)
      : upper_(upper), out_(out), mount_points_(mount_points), buffer_(kBufferSize) {}

  absl::Status WriteDirectory(const std::string& relative) {
    std::string path = relative.empty() ? upper_ : upper_ + "/" + relative;
    std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(path.c_str()), ::closedir);
    if (!dir) return base::ErrnoStatus(errno, "open " + path);
    std::vector<std::string> names;
    while (dirent* item = ::readdir(dir.get())) {
      std::string name = item->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    std::sort(names.begin(), names.end());  // the same tree gives the same layer
    for (const std::string& name : names) {
      std::string child = relative.empty() ? name : relative + "/" + name;
      if (absl::Status written = WriteEntry(child, name); !written.ok()) return written;
    }
    return absl::OkStatus();
  }

  int64_t Entries() const { return entries_; }

 private:
  absl::Status WriteEntry(const std::string& relative, const std::string& name) {
    std::string path = upper_ + "/" + relative;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return base::ErrnoStatus(errno, "lstat " + path);
    std::string parent = relative.substr(0, relative.size() - name.size());
    if (S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
      return WriteMarker(parent + ".wh." + name, st);  // deleted in this step
    }
    if (mount_points_.count(relative) != 0 && IsEmpty(path, st)) return absl::OkStatus();
    std::unique_ptr<archive_entry, EntryDeleter> entry(archive_entry_new());
    archive_entry_set_pathname(entry.get(), relative.c_str());
    archive_entry_set_uid(entry.get(), st.st_uid);
    archive_entry_set_gid(entry.get(), st.st_gid);
    archive_entry_set_mode(entry.get(), st.st_mode);
    archive_entry_set_mtime(entry.get(), st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
    AddXattrs(path, entry.get());
    bool has_data = false;
    if (S_ISREG(st.st_mode)) {
      if (st.st_nlink > 1) {
        auto [it, first] = links_.emplace(std::make_pair(st.st_dev, st.st_ino), relative);
        if (!first) {
          archive_entry_set_hardlink(entry.get(), it->second.c_str());
          archive_entry_set_size(entry.get(), 0);
          return WriteHeader(entry.get(), relative);
        }
      }
      archive_entry_set_size(entry.get(), st.st_size);
      has_data = st.st_size > 0;
    } else if (S_ISLNK(st.st_mode)) {
      std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
      ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
      if (n < 0) return base::ErrnoStatus(errno, "readlink " + path);
      target.resize(static_cast<size_t>(n));
      archive_entry_set_symlink(entry.get(), target.c_str());
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      archive_entry_set_rdev(entry.get(), st.st_rdev);
    }
    if (absl::Status written = WriteHeader(entry.get(), relative); !written.ok()) return written;
    if (has_data) {
      if (absl::Status copied = CopyData(path); !copied.ok()) return copied;
    }
    if (S_ISDIR(st.st_mode)) {
      char value[4] = {};
      ssize_t n = ::lgetxattr(path.c_str(), "trusted.overlay.opaque", value, sizeof value);
      if (n == 1 && value[0] == 'y') {
        // Everything below from lower layers is hidden.
        if (absl::Status marked = WriteMarker(relative + "/.wh..wh..opq", st); !marked.ok()) {
          return marked;
        }
      }
      return WriteDirectory(relative);
    }
    return absl::OkStatus();
  }

  bool IsEmpty(const std::string& path, const struct stat& st) {
    if (S_ISREG(st.st_mode)) return st.st_size == 0;
    if (!S_ISDIR(st.st_mode)) return false;
    std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(path.c_str()), ::closedir);
    if (!dir) return false;
    while (dirent* item = ::readdir(dir.get())) {
      std::string name = item->d_name;
      if (name != "." && name != "..") return false;
    }
    return true;
  }

  absl::Status WriteMarker(const std::string& relative, const struct stat& st) {
    std::unique_ptr<archive_entry, EntryDeleter> entry(archive_entry_new());
    archive_entry_set_pathname(entry.get(), relative.c_str());
    archive_entry_set_filetype(entry.get(), AE_IFREG);
    archive_entry_set_perm(entry.get(), 0);
    archive_entry_set_size(entry.get(), 0);
    archive_entry_set_mtime(entry.get(), st.st_mtim.tv_sec, 0);
    return WriteHeader(entry.get(), relative);
  }

  void AddXattrs(const std::string& path, archive_entry* entry) {
    ssize_t size = ::llistxattr(path.c_str(), nullptr, 0);
    if (size <= 0) return;
    std::string names(static_cast<size_t>(size), '\0');
    size = ::llistxattr(path.c_str(), names.data(), names.size());
    if (size <= 0) return;
    for (size_t at = 0; at < static_cast<size_t>(size);) {
      std::string name(names.c_str() + at);
      at += name.size() + 1;
      // overlay's own bookkeeping (opaque, origin, redirect) is not the image's content.
      if (absl::StartsWith(name, "trusted.overlay.") || absl::StartsWith(name, "user.overlay.")) {
        continue;
      }
      ssize_t length = ::lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
      if (length < 0) continue;
      std::string value(static_cast<size_t>(length), '\0');
      length = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
      if (length < 0) continue;
      archive_entry_xattr_add_entry(entry, name.c_str(), value.data(), static_cast<size_t>(length));
    }
  }

  absl::Status WriteHeader(archive_entry* entry, const std::string& relative) {
    if (archive_write_header(out_, entry) != ARCHIVE_OK) {
      return absl::InternalError(
          absl::StrCat("layer entry ", relative, ": ", archive_error_string(out_)));
    }
    ++entries_;
    return absl::OkStatus();
  }

  absl::Status CopyData(const std::string& path) {
    base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return base::ErrnoStatus(errno, "open " + path);
    for (;;) {
      ssize_t n = ::read(fd.Get(), buffer_.data(), buffer_.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return base::ErrnoStatus(errno, "read " + path);
      if (n == 0) return absl::OkStatus();
      if (archive_write_data(out_, buffer_.data(), static_cast<size_t>(n)) != n) {
        return absl::InternalError(
            absl::StrCat("layer data of ", path, ": ", archive_error_string(out_)));
      }
    }
  }

  std::string upper_;
  archive* out_;
  const std::set<std::string>& mount_points_;
  std::vector<char> buffer_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
  int64_t entries_ = 0;
};

}  // namespace

const std::set<std::string>& RuntimeMountPoints() {
  static const std::set<std::string> kMountPoints = {
      "proc",       "sys",           "dev",       "dev/pts",      "dev/shm",
      "dev/mqueue", "sys/fs/cgroup", "etc/hosts", "etc/hostname", "etc/resolv.conf"};
  return kMountPoints;
}

absl::StatusOr<LayerBlob> WriteLayerFromUpperDir(const std::string& upper,
                                                 images::ContentStore& content,
                                                 const std::set<std::string>& mount_points) {
  absl::StatusOr<std::unique_ptr<images::BlobWriter>> writer =
      content.WriterForUnknown(kLayerMediaType);
  if (!writer.ok()) return writer.status();
  GzipBlobSink sink(**writer);
  SinkState state{&sink, absl::OkStatus()};
  std::unique_ptr<archive, ArchiveDeleter> out(archive_write_new());
  archive_write_set_format_pax_restricted(out.get());
  archive_write_set_bytes_per_block(out.get(), 10240);
  if (archive_write_open2(out.get(), &state, nullptr, WriteCallback, nullptr, nullptr) !=
      ARCHIVE_OK) {
    return absl::InternalError(absl::StrCat("layer archive: ", archive_error_string(out.get())));
  }
  TreeWriter tree(upper, out.get(), mount_points);
  absl::Status walked = tree.WriteDirectory("");
  if (!state.status.ok()) return state.status;
  if (!walked.ok()) return walked;
  if (archive_write_close(out.get()) != ARCHIVE_OK) {
    if (!state.status.ok()) return state.status;
    return absl::InternalError(absl::StrCat("layer archive: ", archive_error_string(out.get())));
  }
  if (absl::Status finished = sink.Finish(); !finished.ok()) return finished;
  absl::StatusOr<int64_t> size = (*writer)->Commit();
  if (!size.ok()) return size.status();
  LayerBlob layer;
  layer.descriptor.media_type = kLayerMediaType;
  layer.descriptor.digest = (*writer)->BlobDigest();
  layer.descriptor.size = *size;
  layer.uncompressed_bytes = sink.Uncompressed();
  layer.diff_id = sink.DiffId();
  layer.entries = tree.Entries();
  return layer;
}

}  // namespace kapal::builder
