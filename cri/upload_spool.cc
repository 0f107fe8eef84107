#include "cri/upload_spool.h"

#include <fcntl.h>

#include "base/files.h"
#include "base/unique_fd.h"

namespace kapal::cri {

absl::StatusOr<SpooledUpload> SpoolUpload(const std::string& scratch_dir, const std::string& prefix,
                                          const std::string& file_name, const NextPiece& next) {
  absl::StatusOr<base::TempDir> dir = base::TempDir::Create(prefix, scratch_dir);
  if (!dir.ok()) return dir.status();
  std::string path = dir->Join(file_name);
  base::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) return base::ErrnoStatus(errno, "create " + path);
  for (;;) {
    absl::StatusOr<std::optional<std::string>> piece = next();
    if (!piece.ok()) return piece.status();
    if (!piece->has_value()) break;
    if (absl::Status written = base::WriteAll(fd.Get(), **piece, path); !written.ok()) {
      return written;
    }
  }
  return SpooledUpload{std::move(*dir), std::move(path)};
}

}  // namespace kapal::cri
