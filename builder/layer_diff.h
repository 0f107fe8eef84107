#pragma once

#include <cstdint>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "images/content_store.h"
#include "images/manifest.h"

namespace kapal::builder {

// A layer a build step made, stored as a blob.
struct LayerBlob {
  images::Descriptor descriptor{"", images::Digest::Sha256Of(""), 0, std::nullopt};  // tar+gzip
  images::Digest diff_id = images::Digest::Sha256Of("");
  int64_t uncompressed_bytes = 0;
  int64_t entries = 0;
};

// Turns the changes an overlay upper directory UPPER holds into an OCI layer, gzip-compressed
// (ISA-L) into CONTENT: files, directories, symlinks, hard links, devices and fifos with their
// owners, modes, times and xattrs; a deletion (overlay's 0/0 character device) becomes a
// `.wh.NAME` whiteout and an opaque directory gets `.wh..wh..opq`. MOUNT_POINTS (paths without
// the leading slash) are the mount targets the runtime created for the step's container
// (/etc/hosts, /proc, ...): left out while they are still empty, as Docker's init layer does.
absl::StatusOr<LayerBlob> WriteLayerFromUpperDir(const std::string& upper,
                                                 images::ContentStore& content,
                                                 const std::set<std::string>& mount_points = {});

// A tar file (plain, gzip or zstd) as a gzip layer (ISA-L) in CONTENT: `docker import`.
absl::StatusOr<LayerBlob> WriteLayerFromTar(const std::string& tar_path,
                                            images::ContentStore& content);

// The mount targets kapald's OCI spec creates in a container's root filesystem.
const std::set<std::string>& RuntimeMountPoints();

}  // namespace kapal::builder
