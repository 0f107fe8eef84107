#include "runtime/log_tail.h"

#include <fstream>
#include <iterator>

namespace kapal::runtime {

std::vector<std::string> LogTail::NewLines() {
  std::ifstream log(path_, std::ios::binary);
  log.seekg(static_cast<std::streamoff>(offset_));
  std::string data((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  offset_ += static_cast<int64_t>(data.size());
  pending_ += data;
  std::vector<std::string> lines;
  size_t start = 0, newline;
  while ((newline = pending_.find('\n', start)) != std::string::npos) {
    lines.push_back(pending_.substr(start, newline - start));
    start = newline + 1;
  }
  pending_.erase(0, start);
  return lines;
}

}  // namespace kapal::runtime
