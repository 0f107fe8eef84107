#include "base/temp_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/files.h"

namespace kapal::base {

absl::StatusOr<TempDir> TempDir::Create(const std::string& prefix, std::string base) {
  if (base.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    base = tmp != nullptr && *tmp != '\0' ? tmp : "/tmp";
  }
  std::string pattern = absl::StrCat(base, "/", prefix, ".XXXXXX");
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (::mkdtemp(buffer.data()) == nullptr) return ErrnoStatus(errno, "mkdtemp " + pattern);
  return TempDir(std::string(buffer.data()));
}

TempDir& TempDir::operator=(TempDir&& other) noexcept {
  if (this != &other) {
    if (!path_.empty()) (void)RemoveTree(path_);
    path_ = std::move(other.path_);
    other.path_.clear();
  }
  return *this;
}

TempDir::~TempDir() {
  if (!path_.empty()) (void)RemoveTree(path_);
}

namespace {

absl::Status RemoveTreeAt(int parent_fd, const char* name, dev_t device) {
  struct stat st {};
  if (::fstatat(parent_fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return errno == ENOENT ? absl::OkStatus() : ErrnoStatus(errno, absl::StrCat("stat ", name));
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlinkat(parent_fd, name, 0) != 0 && errno != ENOENT) {
      return ErrnoStatus(errno, absl::StrCat("unlink ", name));
    }
    return absl::OkStatus();
  }
  if (st.st_dev != device) {
    return absl::FailedPreconditionError(absl::StrCat(name, " is a mount point; not removing"));
  }
  int fd = ::openat(parent_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus(errno, absl::StrCat("open ", name));
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    ::close(fd);
    return ErrnoStatus(errno, absl::StrCat("opendir ", name));
  }
  absl::Status result;
  std::vector<std::string> entries;
  while (dirent* entry = ::readdir(dir)) {
    absl::string_view entry_name = entry->d_name;
    if (entry_name != "." && entry_name != "..") entries.emplace_back(entry_name);
  }
  for (const std::string& entry : entries) {
    absl::Status status = RemoveTreeAt(fd, entry.c_str(), device);
    if (!status.ok() && result.ok()) result = status;
  }
  ::closedir(dir);
  if (result.ok() && ::unlinkat(parent_fd, name, AT_REMOVEDIR) != 0 && errno != ENOENT) {
    result = ErrnoStatus(errno, absl::StrCat("rmdir ", name));
  }
  return result;
}

}  // namespace

absl::Status RemoveTree(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    return errno == ENOENT ? absl::OkStatus() : ErrnoStatus(errno, "stat " + path);
  }
  return RemoveTreeAt(AT_FDCWD, path.c_str(), st.st_dev);
}

}  // namespace kapal::base
