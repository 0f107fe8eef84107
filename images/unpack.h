#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "base/write_behind_sync.h"
#include "images/byte_source.h"
#include "images/decompress.h"
#include "images/digest.h"

namespace kapal::images {

// What a layer's whiteouts become.
enum class WhiteoutStyle {
  // For an overlay upper directory: `.wh.NAME` becomes a 0/0 character device NAME and
  // `.wh..wh..opq` the xattr trusted.overlay.opaque=y on its directory, as the kernel expects.
  kOverlay,
  // For a directory that already holds the parent layers (native snapshots): the whiteout is
  // carried out, deleting NAME, or everything in the opaque directory from lower layers.
  kApply,
  // A plain archive, not a layer (docker cp, ADD): `.wh.` names are ordinary files.
  kNone,
};

// How a plain archive is extracted (ExtractArchive).
struct ExtractOptions {
  // Every entry is owned by this uid/gid rather than the archive's (docker cp -a).
  std::optional<std::pair<uid_t, gid_t>> owner;
  // An entry may not replace an existing directory with a non-directory or the other way
  // round (INVALID_ARGUMENT), as Docker's noOverwriteDirNonDir.
  bool no_overwrite_dir_non_dir = false;
};

struct UnpackedLayer {
  Digest diff_id = Digest::Sha256Of("");  // sha256 of the uncompressed tar
  int64_t uncompressed_bytes = 0;
  int64_t entries = 0;
  std::string format;  // the blob's compression, as LayerStream names it
  // Where the CPU went (the unpacking thread's user and system seconds): reading and
  // inflating the blob, hashing the tar, and the rest (tar parsing, creating and writing files).
  double inflate_seconds = 0;
  double hash_seconds = 0;
  double write_seconds = 0;
};

// Unpacks the layer blob at BLOB_PATH (plain, gzip or zstd tar; see LayerStream) into ROOT, keeping
// owners, modes, mtimes, xattrs, hard links and device nodes. An entry whose path leaves ROOT
// (`..`), or that would be written through a symlink, is INVALID_ARGUMENT: the whole layer is
// refused, and the caller discards ROOT. EXPECTED_DIFF_ID, when given, is checked against the tar's
// digest (DATA_LOSS on mismatch). WRITE_BEHIND, when given, is told of every file byte
// written, so that the disk writes the tree while it is unpacked.
absl::StatusOr<UnpackedLayer> UnpackLayer(const std::string& blob_path, const std::string& root,
                                          WhiteoutStyle style,
                                          const Digest* expected_diff_id = nullptr,
                                          InflateEngine engine = InflateEngine::kIsal,
                                          base::WriteBehindSync* write_behind = nullptr);
// The same, reading the blob's bytes from SOURCE as they arrive (a download followed by its
// unpack); NAME is for errors.
absl::StatusOr<UnpackedLayer> UnpackLayerFrom(std::unique_ptr<ByteSource> source,
                                              const std::string& name, const std::string& root,
                                              WhiteoutStyle style, const Digest* expected_diff_id,
                                              InflateEngine engine,
                                              base::WriteBehindSync* write_behind = nullptr);

// The tar at PATH (plain, gzip or zstd) extracted into ROOT with the guards of UnpackLayer
// (nothing is written outside ROOT or through a symlink) and no whiteouts.
absl::StatusOr<UnpackedLayer> ExtractArchive(const std::string& path, const std::string& root,
                                             const ExtractOptions& options = {});

}  // namespace kapal::images
