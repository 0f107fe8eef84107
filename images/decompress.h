#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "base/unique_fd.h"
#include "images/byte_source.h"

namespace kapal::images {

// Which inflate implementation reads gzip layers. Real layers (binaries, libraries, text)
// compress about 3:1 and inflating them is most of a pull's work: ISA-L's inflate is about 3x
// zlib's on the same bytes. zlib (through libarchive) stays for comparison and as the fallback.
enum class InflateEngine { kIsal, kZlib };

// The uncompressed bytes of a layer blob, whatever it is: gzip (one or more members; CRC-32 and
// length of each checked), zstd (libzstd, its content checksum checked when present), a plain
// tar, or anything else libarchive reads (xz, bzip2). Errors: DATA_LOSS for a checksum that
// does not match or a stream cut short, INVALID_ARGUMENT for bytes that are not the format
// their header names, NOT_FOUND / INTERNAL for the file.
class LayerStream {
 public:
  static absl::StatusOr<std::unique_ptr<LayerStream>> Open(const std::string& blob_path,
                                                           InflateEngine engine);
  // The same over bytes read from FD as they arrive (a socket or pipe fed by a download);
  // NAME is for errors.
  static absl::StatusOr<std::unique_ptr<LayerStream>> FromFd(base::UniqueFd fd,
                                                             const std::string& name,
                                                             InflateEngine engine);
  // The same over any source (a blob still being downloaded).
  static absl::StatusOr<std::unique_ptr<LayerStream>> FromSource(std::unique_ptr<ByteSource> source,
                                                                 const std::string& name,
                                                                 InflateEngine engine);
  virtual ~LayerStream() = default;
  // Up to SIZE bytes into BUFFER; 0 at the end of the stream.
  virtual absl::StatusOr<size_t> Read(char* buffer, size_t size) = 0;
  // What was recognised: "gzip (isa-l)", "gzip (zlib)", "zstd", "tar", ...
  virtual std::string Format() const = 0;
};

}  // namespace kapal::images
