#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kapal::runtime {

// Follows a CRI log file as the shim writes it: each call returns the complete lines written
// since the previous one (a line still being written waits for its newline).
class LogTail {
 public:
  explicit LogTail(std::string path, int64_t offset = 0)
      : path_(std::move(path)), offset_(offset) {}

  std::vector<std::string> NewLines();

 private:
  std::string path_;
  int64_t offset_;
  std::string pending_;
};

}  // namespace kapal::runtime
