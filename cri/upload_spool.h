#pragma once

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "base/temp_dir.h"

namespace kapal::cri {

// A client-streamed upload (an image archive, a build context, a tar for cp) in a private file,
// so that the core can read it more than once and the call holds no more than one piece in
// memory. The directory goes, with the file, when this is destroyed.
struct SpooledUpload {
  base::TempDir dir;
  std::string path;
};

// The pieces NEXT gives (nullopt at the end; an error ends the upload) written to
// SCRATCH_DIR/PREFIX.XXXXXX/FILE_NAME, readable only by kapald.
using NextPiece = std::function<absl::StatusOr<std::optional<std::string>>()>;
absl::StatusOr<SpooledUpload> SpoolUpload(const std::string& scratch_dir, const std::string& prefix,
                                          const std::string& file_name, const NextPiece& next);

}  // namespace kapal::cri
