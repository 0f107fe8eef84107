#pragma once

#include <atomic>
#include <cstdio>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace kapal::base {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name);
absl::string_view LogLevelName(LogLevel level);

// Writes one line per message to a stream (stderr for the daemon):
//   2026-11-24T22:40:01.123456Z info  listening on /run/kapal/kapal.sock
// A Logger is an object handed to whoever logs, never a global, so tests can capture or silence
// it and two daemons in one test process cannot step on each other's level.
class Logger {
 public:
  explicit Logger(LogLevel level = LogLevel::kInfo, std::FILE* sink = stderr)
      : level_(level), sink_(sink) {}

  void SetLevel(LogLevel level) { level_.store(level, std::memory_order_relaxed); }
  LogLevel Level() const { return level_.load(std::memory_order_relaxed); }
  bool Enabled(LogLevel level) const { return level >= Level(); }

  void Write(LogLevel level, absl::string_view message);

  template <typename... Args>
  void Debug(const Args&... args) {
    Log(LogLevel::kDebug, args...);
  }
  template <typename... Args>
  void Info(const Args&... args) {
    Log(LogLevel::kInfo, args...);
  }
  template <typename... Args>
  void Warn(const Args&... args) {
    Log(LogLevel::kWarn, args...);
  }
  template <typename... Args>
  void Error(const Args&... args) {
    Log(LogLevel::kError, args...);
  }

 private:
  template <typename... Args>
  void Log(LogLevel level, const Args&... args) {
    if (Enabled(level)) Write(level, absl::StrCat(args...));
  }

  std::atomic<LogLevel> level_;
  std::FILE* sink_;
  std::mutex write_mutex_;
};

}  // namespace kapal::base
