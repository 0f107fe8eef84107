#pragma once

// A directory tree (or one file) written as a tar stream: the build's layers (an overlay upper
// directory, whose deletions become OCI whiteouts) and the Docker door's cp and export (a plain
// tree) share it.

#include <cstdint>
#include <functional>
#include <set>
#include <string>

#include "absl/status/statusor.h"

namespace kapal::images {

// Receives the tar's bytes in order; an error ends the writing with it.
using ArchiveSink = std::function<absl::Status(const void* data, size_t size)>;

struct TreeArchiveOptions {
  // The tree is an overlay upper directory: a 0/0 character device (a deletion) becomes a
  // `.wh.NAME` entry and an opaque directory gets `.wh..wh..opq`; overlay's own xattrs are left
  // out either way.
  bool overlay_upper = false;
  // Paths (relative, no leading slash) left out while they are empty: the mount points a
  // runtime created in a container's root.
  std::set<std::string> skip_when_empty;
  // Directories on these kinds of file systems (statfs f_type) are written, their contents are
  // not: /proc, /sys and their kind inside a running container's root.
  std::set<int64_t> skip_contents_of_fs_types;
  // The archive's name for PATH itself ("etc" for /etc): PATH is its first entry and the rest
  // is under it. Empty: PATH must be a directory, its contents are the entries (a layer).
  std::string root_name;
};

// Writes the tree at PATH as a pax tar to SINK: files, directories, symlinks, hard links,
// devices and fifos with owners, modes, times and xattrs, in name order (the same tree gives
// the same bytes). Returns the number of entries.
absl::StatusOr<int64_t> WriteTreeArchive(const std::string& path, const TreeArchiveOptions& options,
                                         const ArchiveSink& sink);

// The statfs kinds of a container's kernel file systems (proc, sysfs, cgroup, devpts, mqueue).
const std::set<int64_t>& KernelFileSystemTypes();

}  // namespace kapal::images
