#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

// The CRI container log format that kubelet reads (`kubectl logs`):
//   2026-11-25T12:00:00.123456789Z stdout F a whole line
//   2026-11-25T12:00:00.123456789Z stderr P the first part of a long line, then
// F marks the end of a line, P a part of one that continues in the next entry of that stream.
namespace kapal::shim {

enum class Stream { kStdout, kStderr };

// Formats the timestamp of a log entry: RFC 3339 in UTC with nanoseconds.
std::string FormatLogTimestamp(int64_t unix_nanos);

// Writes a container's output to its log file, line by line. Output arrives in arbitrary
// pieces; each stream keeps its unfinished line until the newline comes. A line longer than
// MAX_LINE is written in MAX_LINE parts tagged P, so one endless line cannot grow the shim.
class CriLogWriter {
 public:
  static constexpr size_t kDefaultMaxLine = 16 * 1024;

  explicit CriLogWriter(std::string path, size_t max_line = kDefaultMaxLine);
  ~CriLogWriter();
  CriLogWriter(const CriLogWriter&) = delete;
  CriLogWriter& operator=(const CriLogWriter&) = delete;

  // Opens (or, after rotation by kubelet, reopens) the file for appending. Returns errno or 0.
  int Open();
  // Appends output of STREAM; complete lines are written at once.
  void Write(Stream stream, const char* data, size_t size);
  // Writes what is left of unfinished lines as P entries (the stream ended without a newline).
  void Flush();

  const std::string& Path() const { return path_; }

 private:
  void WriteEntry(Stream stream, const char* data, size_t size, bool partial);

  std::string path_;
  size_t max_line_;
  int fd_ = -1;
  std::string pending_[2];
};

}  // namespace kapal::shim
