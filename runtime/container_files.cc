#include "runtime/container_files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/files.h"
#include "images/unpack.h"
#include "shim/exit_file.h"

namespace kapal::runtime {

namespace {

// PATH made absolute and clean ("a/../b/" is "/b"); the root is "/".
std::string CleanContainerPath(const std::string& path) {
  std::vector<std::string> parts;
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    if (part == "..") {
      if (!parts.empty()) parts.pop_back();
      continue;
    }
    parts.emplace_back(part);
  }
  return "/" + absl::StrJoin(parts, "/");
}

// Whether the path asks for what a directory holds rather than the entry itself: "dir/", "dir/."
bool EndsInDirectory(const std::string& path) {
  return absl::EndsWith(path, "/") || absl::EndsWith(path, "/.") || path == ".";
}

std::string LastPart(const std::string& clean) {
  if (clean == "/") return "/";
  return clean.substr(clean.rfind('/') + 1);
}

}  // namespace

bool ContainerFiles::Running() const { return container_.state == runtime::v1::CONTAINER_RUNNING; }

std::string ContainerFiles::RootDirectory() const {
  if (Running()) {
    // The shim's runtime wrote the container's init pid into the bundle at create.
    absl::StatusOr<std::string> pid = base::ReadFile(container_.bundle + "/" + shim::kPidFile);
    int value = 0;
    if (pid.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(*pid), &value) && value > 0) {
      std::string root = absl::StrCat("/proc/", value, "/root");
      if (::access(root.c_str(), F_OK) == 0) return root;
    }
  }
  return container_.bundle + "/rootfs";
}

absl::StatusOr<ContainerFiles::Location> ContainerFiles::Locate(const std::string& path,
                                                                bool follow_last) const {
  std::string clean = CleanContainerPath(path);
  Location location{RootDirectory(), "/", ""};
  if (!Running()) {
    // Not running: the bind mounts (volumes) are not in the root filesystem; the deepest one
    // holding the path stands in for its part of the tree.
    size_t best = 0;
    for (const runtime::v1::Mount& mount : container_.config.mounts()) {
      std::string destination = CleanContainerPath(mount.container_path());
      if (destination == "/" || mount.host_path().empty()) continue;
      bool inside = clean == destination || absl::StartsWith(clean, destination + "/");
      if (inside && destination.size() > best) {
        best = destination.size();
        location.root = mount.host_path();
        location.container_prefix = destination;
      }
    }
  }
  std::string below =
      location.container_prefix == "/" ? clean : clean.substr(location.container_prefix.size());
  if (below.empty()) below = "/";
  if (follow_last || below == "/") {
    absl::StatusOr<std::string> resolved = base::ResolveInRoot(location.root, below);
    if (!resolved.ok()) return resolved.status();
    location.host_path = *resolved;
    return location;
  }
  // The last part is the entry itself (a symlink is copied as a symlink), its directory is
  // resolved.
  size_t slash = below.rfind('/');
  absl::StatusOr<std::string> parent =
      base::ResolveInRoot(location.root, slash == 0 ? "/" : below.substr(0, slash));
  if (!parent.ok()) return parent.status();
  location.host_path = *parent + below.substr(slash);
  return location;
}

absl::StatusOr<ContainerPathStat> ContainerFiles::Stat(const std::string& path) const {
  absl::StatusOr<Location> location = Locate(path, EndsInDirectory(path));
  if (!location.ok()) return location.status();
  struct stat st {};
  if (::lstat(location->host_path.c_str(), &st) != 0) {
    if (errno == ENOENT || errno == ENOTDIR) {
      return absl::NotFoundError(absl::StrCat("Could not find the file ", path, " in container ",
                                              container_.id.substr(0, 12)));
    }
    return base::ErrnoStatus(errno, "stat " + path);
  }
  ContainerPathStat stat;
  stat.name = LastPart(CleanContainerPath(path));
  stat.size = st.st_size;
  stat.mode = st.st_mode;
  stat.mtime_nanos = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (S_ISLNK(st.st_mode)) {
    absl::StatusOr<Location> target = Locate(path, /*follow_last=*/true);
    if (target.ok()) {
      std::string inside = target->host_path.substr(target->root.size());
      stat.link_target = CleanContainerPath(
          target->container_prefix == "/" ? inside : target->container_prefix + inside);
    }
  }
  return stat;
}

absl::Status ContainerFiles::Archive(const std::string& path,
                                     const images::ArchiveSink& sink) const {
  bool contents = EndsInDirectory(path);
  absl::StatusOr<Location> location = Locate(path, contents);
  if (!location.ok()) return location.status();
  struct stat st {};
  if (::lstat(location->host_path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("Could not find the file ", path, " in container ",
                                            container_.id.substr(0, 12)));
  }
  images::TreeArchiveOptions options;
  std::string clean = CleanContainerPath(path);
  options.root_name = contents || clean == "/" ? "." : LastPart(clean);
  // /proc, /sys and their kind are written as empty directories, not walked.
  options.skip_contents_of_fs_types = images::KernelFileSystemTypes();
  absl::StatusOr<int64_t> written = images::WriteTreeArchive(location->host_path, options, sink);
  return written.status();
}

absl::Status ContainerFiles::Extract(const std::string& directory, const std::string& archive_path,
                                     const CopyInOptions& options) const {
  absl::StatusOr<Location> location = Locate(directory, /*follow_last=*/true);
  if (!location.ok()) return location.status();
  struct stat st {};
  if (::stat(location->host_path.c_str(), &st) != 0) {
    return absl::NotFoundError(absl::StrCat("Could not find the file ", directory, " in container ",
                                            container_.id.substr(0, 12)));
  }
  if (!S_ISDIR(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("extraction point is not a directory: ", directory));
  }
  images::ExtractOptions extract;
  extract.no_overwrite_dir_non_dir = options.no_overwrite_dir_non_dir;
  if (options.owner_from_container) {
    ProcessUser user = container_.user.value_or(ProcessUser{});
    extract.owner = std::make_pair(static_cast<uid_t>(user.uid), static_cast<gid_t>(user.gid));
  }
  absl::StatusOr<images::UnpackedLayer> unpacked =
      images::ExtractArchive(archive_path, location->host_path, extract);
  if (!unpacked.ok()) {
    if (unpacked.status().code() == absl::StatusCode::kInvalidArgument ||
        unpacked.status().code() == absl::StatusCode::kDataLoss) {
      return absl::InvalidArgumentError(
          absl::StrCat("copying into ", directory, ": ", unpacked.status().message()));
    }
    return unpacked.status();
  }
  return absl::OkStatus();
}

absl::Status ContainerFiles::Export(const images::ArchiveSink& sink) const {
  images::TreeArchiveOptions options;
  options.skip_contents_of_fs_types = images::KernelFileSystemTypes();
  absl::StatusOr<int64_t> written =
      images::WriteTreeArchive(container_.bundle + "/rootfs", options, sink);
  return written.status();
}

}  // namespace kapal::runtime
