#include "shim/cri_log.h"

#include <fcntl.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace kapal::shim {

namespace {

int64_t NowNanos() {
  timespec now{};
  ::clock_gettime(CLOCK_REALTIME, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000000000 + now.tv_nsec;
}

const char* StreamName(Stream stream) { return stream == Stream::kStdout ? "stdout" : "stderr"; }

}  // namespace

std::string FormatLogTimestamp(int64_t unix_nanos) {
  time_t seconds = static_cast<time_t>(unix_nanos / 1000000000);
  long nanos = static_cast<long>(unix_nanos % 1000000000);
  tm utc{};
  ::gmtime_r(&seconds, &utc);
  char text[48];
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%09ldZ", utc.tm_year + 1900,
                utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, nanos);
  return text;
}

CriLogWriter::CriLogWriter(std::string path, size_t max_line)
    : path_(std::move(path)), max_line_(max_line) {}

CriLogWriter::~CriLogWriter() {
  if (fd_ >= 0) ::close(fd_);
}

int CriLogWriter::Open() {
  int fd = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0) return errno;
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  return 0;
}

void CriLogWriter::Write(Stream stream, const char* data, size_t size) {
  std::string& pending = pending_[stream == Stream::kStdout ? 0 : 1];
  while (size > 0) {
    const char* newline = static_cast<const char*>(std::memchr(data, '\n', size));
    size_t line_end = newline != nullptr ? static_cast<size_t>(newline - data) : size;
    size_t line_size = pending.size() + line_end;
    if (line_size > max_line_ || (newline == nullptr && line_size == max_line_)) {
      // The line (with what is pending) reaches the limit: write one full-size part.
      size_t take = max_line_ - pending.size();
      pending.append(data, take);
      WriteEntry(stream, pending.data(), pending.size(), /*partial=*/true);
      pending.clear();
      data += take;
      size -= take;
      continue;
    }
    if (newline == nullptr) {
      pending.append(data, size);
      return;
    }
    pending.append(data, line_end);
    WriteEntry(stream, pending.data(), pending.size(), /*partial=*/false);
    pending.clear();
    data += line_end + 1;
    size -= line_end + 1;
  }
}

void CriLogWriter::Flush() {
  for (Stream stream : {Stream::kStdout, Stream::kStderr}) {
    std::string& pending = pending_[stream == Stream::kStdout ? 0 : 1];
    if (!pending.empty()) WriteEntry(stream, pending.data(), pending.size(), /*partial=*/true);
    pending.clear();
  }
}

void CriLogWriter::WriteEntry(Stream stream, const char* data, size_t size, bool partial) {
  if (fd_ < 0) return;
  std::string head = FormatLogTimestamp(NowNanos());
  head += ' ';
  head += StreamName(stream);
  head += partial ? " P " : " F ";
  char newline = '\n';
  iovec parts[3] = {{head.data(), head.size()}, {const_cast<char*>(data), size}, {&newline, 1}};
  // One writev per entry: with O_APPEND the entry lands whole even if kubelet reads meanwhile.
  while (::writev(fd_, parts, 3) < 0 && errno == EINTR) {
  }
}

}  // namespace kapal::shim
