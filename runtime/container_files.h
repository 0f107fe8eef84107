#pragma once

// A container's files for Docker's cp and export: read and written where the container sees
// them. A running container's root is its processes' own (/proc/PID/root: its volumes and tmpfs
// mounts included); a created or exited one's is its root filesystem mount, with the host
// directories of its bind mounts (volumes) in their places. Paths are resolved inside that
// root as the container would (symlinks never lead out of it).

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "images/tree_archive.h"
#include "runtime/records.h"

namespace kapal::runtime {

// What Docker's cp needs to know of a path before copying (HEAD /containers/ID/archive).
struct ContainerPathStat {
  std::string name;  // the last part of the path asked for
  int64_t size = 0;
  mode_t mode = 0;  // st_mode of the path itself (a symlink is not followed)
  int64_t mtime_nanos = 0;
  std::string link_target;  // a symlink's destination as a path in the container, else ""
};

struct CopyInOptions {
  // An entry may not replace a directory with a non-directory or the other way round.
  bool no_overwrite_dir_non_dir = false;
  // Everything copied becomes the container user's (docker cp -a); else the archive's owners.
  bool owner_from_container = false;
};

class ContainerFiles {
 public:
  // CONTAINER as it was when asked for (a copy: the record may change meanwhile).
  explicit ContainerFiles(Container container) : container_(std::move(container)) {}

  // NOT_FOUND names the path and the container when it does not exist.
  absl::StatusOr<ContainerPathStat> Stat(const std::string& path) const;
  // PATH (a file, or a directory and what it holds) as a tar whose top entry is PATH's last
  // part ("." for "/" and for a path ending in "/."), Docker's layout for cp.
  absl::Status Archive(const std::string& path, const images::ArchiveSink& sink) const;
  // The tar at ARCHIVE_PATH extracted into directory DIRECTORY of the container (which must
  // exist: NOT_FOUND; INVALID_ARGUMENT when it is not a directory or the archive is bad).
  absl::Status Extract(const std::string& directory, const std::string& archive_path,
                       const CopyInOptions& options) const;
  // The whole root filesystem as a tar (docker export): the image's files with the container's
  // changes, without its volumes and kernel file systems.
  absl::Status Export(const images::ArchiveSink& sink) const;

 private:
  // Where PATH is on the host, and the container path that host root stands for.
  struct Location {
    std::string root;              // a host directory that is CONTAINER_PREFIX in the container
    std::string container_prefix;  // "/" or a mount's destination
    std::string host_path;         // PATH itself
  };
  // FOLLOW_LAST: a symlink in the last part is followed too (always for "dir/" and "dir/.").
  absl::StatusOr<Location> Locate(const std::string& path, bool follow_last) const;
  // The host directory that is the container's "/": see the comment at the top.
  std::string RootDirectory() const;
  bool Running() const;

  Container container_;
};

}  // namespace kapal::runtime
