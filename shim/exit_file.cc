#include "shim/exit_file.h"

#include <cstdlib>

namespace kapal::shim {

std::string FormatExitRecord(const ExitRecord& record) {
  std::string text;
  text += "exit_code=" + std::to_string(record.exit_code) + "\n";
  text += "signal=" + std::to_string(record.signal) + "\n";
  text += "finished_at_ns=" + std::to_string(record.finished_at_ns) + "\n";
  text += std::string("oom_killed=") + (record.oom_killed ? "1" : "0") + "\n";
  return text;
}

std::optional<ExitRecord> ParseExitRecord(const std::string& text) {
  ExitRecord record;
  int seen = 0;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) return std::nullopt;  // every line ends with a newline
    std::string line = text.substr(start, end - start);
    start = end + 1;
    size_t equals = line.find('=');
    if (equals == std::string::npos) return std::nullopt;
    std::string key = line.substr(0, equals);
    std::string value = line.substr(equals + 1);
    char* rest = nullptr;
    long long number = std::strtoll(value.c_str(), &rest, 10);
    if (value.empty() || *rest != '\0') return std::nullopt;
    if (key == "exit_code") {
      record.exit_code = static_cast<int>(number);
      seen |= 1;
    } else if (key == "signal") {
      record.signal = static_cast<int>(number);
      seen |= 2;
    } else if (key == "finished_at_ns") {
      record.finished_at_ns = number;
      seen |= 4;
    } else if (key == "oom_killed") {
      record.oom_killed = number != 0;
      seen |= 8;
    }
  }
  if (seen != 15) return std::nullopt;
  return record;
}

}  // namespace kapal::shim
