#include "images/tree_archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
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

namespace kapal::images {

namespace {

constexpr size_t kBufferSize = 1 << 20;

struct ArchiveDeleter {
  void operator()(archive* a) const { archive_write_free(a); }
};
struct EntryDeleter {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};

struct SinkState {
  const ArchiveSink* sink;
  absl::Status status;
};

la_ssize_t WriteCallback(archive*, void* client, const void* buffer, size_t length) {
  auto* state = static_cast<SinkState*>(client);
  if (absl::Status written = (*state->sink)(buffer, length); !written.ok()) {
    state->status = written;
    return -1;
  }
  return static_cast<la_ssize_t>(length);
}

class TreeWriter {
 public:
  TreeWriter(const std::string& top, archive* out, const TreeArchiveOptions& options)
      : top_(top), out_(out), options_(options), buffer_(kBufferSize) {}

  // The entry NAME (its archive name RELATIVE) at host path PATH, and what is below it.
  absl::Status WriteEntry(const std::string& path, const std::string& relative,
                          const std::string& name) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return base::ErrnoStatus(errno, "lstat " + path);
    std::string parent = relative.substr(0, relative.size() - name.size());
    if (options_.overlay_upper && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
      return WriteMarker(parent + ".wh." + name, st);  // deleted in this layer
    }
    if (options_.skip_when_empty.count(relative) != 0 && IsEmpty(path, st)) {
      return absl::OkStatus();
    }
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
    } else if (S_ISSOCK(st.st_mode)) {
      return absl::OkStatus();  // tar has no sockets; a listener's socket is not content
    }
    if (absl::Status written = WriteHeader(entry.get(), relative); !written.ok()) return written;
    if (has_data) {
      if (absl::Status copied = CopyData(path, st.st_size); !copied.ok()) return copied;
    }
    if (S_ISDIR(st.st_mode)) {
      if (options_.overlay_upper) {
        char value[4] = {};
        ssize_t n = ::lgetxattr(path.c_str(), "trusted.overlay.opaque", value, sizeof value);
        if (n == 1 && value[0] == 'y') {
          // Everything below from lower layers is hidden.
          if (absl::Status marked = WriteMarker(relative + "/.wh..wh..opq", st); !marked.ok()) {
            return marked;
          }
        }
      }
      if (SkipContents(path)) return absl::OkStatus();
      return WriteDirectory(path, relative);
    }
    return absl::OkStatus();
  }

  // The entries below directory PATH, named RELATIVE/NAME ("" for the archive's top).
  absl::Status WriteDirectory(const std::string& path, const std::string& relative) {
    std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(path.c_str()), ::closedir);
    if (!dir) return base::ErrnoStatus(errno, "open " + path);
    std::vector<std::string> names;
    while (dirent* item = ::readdir(dir.get())) {
      std::string name = item->d_name;
      if (name != "." && name != "..") names.push_back(name);
    }
    dir.reset();
    std::sort(names.begin(), names.end());  // the same tree gives the same archive
    for (const std::string& name : names) {
      std::string child = relative.empty() ? name : relative + "/" + name;
      if (absl::Status written = WriteEntry(path + "/" + name, child, name); !written.ok()) {
        return written;
      }
    }
    return absl::OkStatus();
  }

  int64_t Entries() const { return entries_; }

 private:
  bool SkipContents(const std::string& path) {
    if (options_.skip_contents_of_fs_types.empty()) return false;
    struct statfs fs {};
    if (::statfs(path.c_str(), &fs) != 0) return false;
    return options_.skip_contents_of_fs_types.count(static_cast<int64_t>(fs.f_type)) != 0;
  }

  static bool IsEmpty(const std::string& path, const struct stat& st) {
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

  static void AddXattrs(const std::string& path, archive_entry* entry) {
    ssize_t size = ::llistxattr(path.c_str(), nullptr, 0);
    if (size <= 0) return;
    std::string names(static_cast<size_t>(size), '\0');
    size = ::llistxattr(path.c_str(), names.data(), names.size());
    if (size <= 0) return;
    for (size_t at = 0; at < static_cast<size_t>(size);) {
      std::string name(names.c_str() + at);
      at += name.size() + 1;
      // overlay's own bookkeeping (opaque, origin, redirect) is not content.
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
          absl::StrCat("archive entry ", relative, ": ", archive_error_string(out_)));
    }
    ++entries_;
    return absl::OkStatus();
  }

  // Exactly SIZE bytes, as the header said: a file that grows while it is read is cut, one
  // that shrinks is padded with zeros (a running container's log, say).
  absl::Status CopyData(const std::string& path, off_t size) {
    base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return base::ErrnoStatus(errno, "open " + path);
    off_t left = size;
    while (left > 0) {
      size_t want = static_cast<size_t>(std::min<off_t>(left, static_cast<off_t>(buffer_.size())));
      ssize_t n = ::read(fd.Get(), buffer_.data(), want);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return base::ErrnoStatus(errno, "read " + path);
      if (n == 0) {
        std::fill(buffer_.begin(), buffer_.begin() + static_cast<ptrdiff_t>(want), '\0');
        n = static_cast<ssize_t>(want);
      }
      if (archive_write_data(out_, buffer_.data(), static_cast<size_t>(n)) != n) {
        return absl::InternalError(
            absl::StrCat("archive data of ", path, ": ", archive_error_string(out_)));
      }
      left -= n;
    }
    return absl::OkStatus();
  }

  std::string top_;
  archive* out_;
  const TreeArchiveOptions& options_;
  std::vector<char> buffer_;
  std::map<std::pair<dev_t, ino_t>, std::string> links_;
  int64_t entries_ = 0;
};

}  // namespace

const std::set<int64_t>& KernelFileSystemTypes() {
  static const std::set<int64_t> kTypes = {
      PROC_SUPER_MAGIC,   SYSFS_MAGIC, CGROUP_SUPER_MAGIC, CGROUP2_SUPER_MAGIC,
      DEVPTS_SUPER_MAGIC, 0x19800202,  SECURITYFS_MAGIC,   DEBUGFS_MAGIC};  // 0x1980..: mqueue
  return kTypes;
}

absl::StatusOr<int64_t> WriteTreeArchive(const std::string& path, const TreeArchiveOptions& options,
                                         const ArchiveSink& sink) {
  SinkState state{&sink, absl::OkStatus()};
  std::unique_ptr<archive, ArchiveDeleter> out(archive_write_new());
  archive_write_set_format_pax_restricted(out.get());
  archive_write_set_bytes_per_block(out.get(), 10240);
  if (archive_write_open2(out.get(), &state, nullptr, WriteCallback, nullptr, nullptr) !=
      ARCHIVE_OK) {
    return absl::InternalError(absl::StrCat("archive: ", archive_error_string(out.get())));
  }
  TreeWriter tree(path, out.get(), options);
  absl::Status walked = options.root_name.empty()
                            ? tree.WriteDirectory(path, "")
                            : tree.WriteEntry(path, options.root_name, options.root_name);
  if (!state.status.ok()) return state.status;
  if (!walked.ok()) return walked;
  if (archive_write_close(out.get()) != ARCHIVE_OK) {
    if (!state.status.ok()) return state.status;
    return absl::InternalError(absl::StrCat("archive: ", archive_error_string(out.get())));
  }
  return tree.Entries();
}

}  // namespace kapal::images
