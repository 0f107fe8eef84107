#include "base/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/unique_fd.h"

namespace kapal::base {

absl::Status ErrnoStatus(int errno_value, absl::string_view context) {
  return absl::ErrnoToStatus(errno_value, context);
}

absl::StatusOr<std::string> ReadFile(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("open ", path));
  std::string content;
  char buffer[64 * 1024];
  for (;;) {
    ssize_t n = ::read(fd.Get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus(errno, absl::StrCat("read ", path));
    }
    if (n == 0) break;
    content.append(buffer, static_cast<size_t>(n));
  }
  return content;
}

absl::Status WriteAll(int fd, absl::string_view data, absl::string_view context) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return ErrnoStatus(errno, absl::StrCat("write ", context));
    if (n == 0) return ErrnoStatus(EIO, absl::StrCat("write ", context));
    data.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

absl::Status WriteFileAtomically(const std::string& path, absl::string_view content, mode_t mode,
                                 Durability durability) {
  std::string temp = absl::StrCat(path, ".tmp-", ::getpid());
  UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd) return ErrnoStatus(errno, absl::StrCat("create ", temp));
  absl::string_view rest = content;
  while (!rest.empty()) {
    ssize_t n = ::write(fd.Get(), rest.data(), rest.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      absl::Status status = ErrnoStatus(errno, absl::StrCat("write ", temp));
      ::unlink(temp.c_str());
      return status;
    }
    rest.remove_prefix(static_cast<size_t>(n));
  }
  if ((durability == Durability::kSynced && ::fsync(fd.Get()) != 0) ||
      ::fchmod(fd.Get(), mode) != 0) {
    absl::Status status = ErrnoStatus(errno, absl::StrCat("sync ", temp));
    ::unlink(temp.c_str());
    return status;
  }
  fd.Reset();
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    absl::Status status = ErrnoStatus(errno, absl::StrCat("rename ", temp, " to ", path));
    ::unlink(temp.c_str());
    return status;
  }
  return absl::OkStatus();
}

absl::Status MakeDirectories(const std::string& path, mode_t mode) {
  if (path.empty()) return absl::InvalidArgumentError("empty directory path");
  // Each prefix ending before a '/' (and the whole path) is created in turn.
  for (size_t slash = path.find('/', 1);; slash = path.find('/', slash + 1)) {
    std::string prefix = path.substr(0, slash);
    if (::mkdir(prefix.c_str(), mode) == 0) {
      // Exactly MODE: kapald runs with umask 077, which would otherwise take the "group" and
      // "other" bits from directories that must have them (an image's directories, logs).
      if (::chmod(prefix.c_str(), mode) != 0) {
        return ErrnoStatus(errno, absl::StrCat("chmod ", prefix));
      }
    } else if (errno != EEXIST) {
      return ErrnoStatus(errno, absl::StrCat("mkdir ", prefix));
    }
    if (slash == std::string::npos) break;
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return ErrnoStatus(errno, absl::StrCat("stat ", path));
  if (!S_ISDIR(st.st_mode)) return absl::FailedPreconditionError(path + " is not a directory");
  return absl::OkStatus();
}

absl::StatusOr<std::string> FindExecutable(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("empty executable name");
  auto executable = [](const std::string& candidate) {
    struct stat st {};
    // access(X_OK) alone is true for root whenever any x bit is set; the mode decides here.
    return ::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111) != 0 &&
           ::access(candidate.c_str(), X_OK) == 0;
  };
  if (name.find('/') != absl::string_view::npos) {
    std::string path(name);
    if (executable(path)) return path;
    return absl::NotFoundError(absl::StrCat(name, " does not exist or is not executable"));
  }
  const char* env_path = std::getenv("PATH");
  std::string search = env_path != nullptr ? env_path : "/usr/sbin:/usr/bin:/sbin:/bin";
  for (absl::string_view dir : absl::StrSplit(search, ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (executable(candidate)) return candidate;
  }
  return absl::NotFoundError(absl::StrCat(name, " not found in PATH (", search, ")"));
}

namespace {

void Measure(const std::string& path, dev_t device, TreeUsage& usage) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0 || st.st_dev != device) return;
  ++usage.inodes;
  usage.bytes += static_cast<int64_t>(st.st_blocks) * 512;
  if (!S_ISDIR(st.st_mode)) return;
  DIR* dir = ::opendir(path.c_str());
  if (dir == nullptr) return;
  std::vector<std::string> names;
  while (dirent* entry = ::readdir(dir)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(dir);
  for (const std::string& name : names) Measure(path + "/" + name, device, usage);
}

}  // namespace

TreeUsage MeasureTree(const std::string& path) {
  TreeUsage usage;
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) Measure(path, st.st_dev, usage);
  return usage;
}

absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& path) {
  DIR* stream = ::opendir(path.c_str());
  if (stream == nullptr) return ErrnoStatus(errno, "open directory " + path);
  std::vector<std::string> names;
  while (dirent* entry = ::readdir(stream)) {
    std::string name = entry->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(stream);
  std::sort(names.begin(), names.end());
  return names;
}

namespace {
// As the kernel's limit on symlinks followed in one lookup.
constexpr int kMaxSymlinksInPath = 40;
}  // namespace

absl::StatusOr<std::string> ResolveInRoot(const std::string& root, const std::string& path) {
  std::deque<std::string> pending;
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    pending.emplace_back(part);
  }
  std::vector<std::string> resolved;
  int links = 0;
  while (!pending.empty()) {
    std::string part = pending.front();
    pending.pop_front();
    if (part == ".") continue;
    if (part == "..") {
      if (!resolved.empty()) resolved.pop_back();
      continue;
    }
    std::string candidate =
        root + "/" + absl::StrJoin(resolved, "/") + (resolved.empty() ? "" : "/") + part;
    struct stat st {};
    if (::lstat(candidate.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
      if (++links > kMaxSymlinksInPath) {
        return absl::InvalidArgumentError(absl::StrCat("too many symlinks in ", path));
      }
      std::string target(static_cast<size_t>(st.st_size) + 1, '\0');
      ssize_t n = ::readlink(candidate.c_str(), target.data(), target.size());
      if (n < 0) return base::ErrnoStatus(errno, "readlink " + candidate);
      target.resize(static_cast<size_t>(n));
      if (absl::StartsWith(target, "/")) resolved.clear();
      std::vector<std::string> parts = absl::StrSplit(target, '/', absl::SkipEmpty());
      pending.insert(pending.begin(), parts.begin(), parts.end());
      continue;
    }
    resolved.push_back(part);
  }
  return resolved.empty() ? root : root + "/" + absl::StrJoin(resolved, "/");
}

void MarkAsTopOfTrees(const std::string& directory) {
  UniqueFd fd(::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return;
  int flags = 0;
  if (::ioctl(fd.Get(), FS_IOC_GETFLAGS, &flags) != 0 || (flags & FS_TOPDIR_FL) != 0) return;
  flags |= FS_TOPDIR_FL;
  (void)::ioctl(fd.Get(), FS_IOC_SETFLAGS, &flags);
}

}  // namespace kapal::base
