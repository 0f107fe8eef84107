#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "base/unique_fd.h"

namespace kapal::images {

// Where a layer's compressed bytes come from: a blob file, or a blob still being downloaded.
class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Up to SIZE bytes into BUFFER; 0 at the end.
  virtual absl::StatusOr<size_t> Read(uint8_t* buffer, size_t size) = 0;
};

// The bytes of FD (a file, socket or pipe) read forwards until its end; PATH is for errors.
std::unique_ptr<ByteSource> ReadFromFd(base::UniqueFd fd, std::string path);

}  // namespace kapal::images
