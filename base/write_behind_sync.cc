#include "base/write_behind_sync.h"

#include <unistd.h>

#include <cerrno>

#include "base/files.h"

namespace kapal::base {

void WriteBehindSync::Wrote(int64_t bytes) {
  std::lock_guard lock(mutex_);
  if (finishing_) return;
  written_ += bytes;
  if (written_ - synced_ < every_bytes_) return;
  if (!thread_.joinable()) {
    thread_ = std::thread([this] { Run(); });
  } else {
    changed_.notify_one();
  }
}

absl::Status WriteBehindSync::Finish() {
  {
    std::lock_guard lock(mutex_);
    finishing_ = true;
  }
  changed_.notify_one();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mutex_);
  return error_;
}

void WriteBehindSync::Run() {
  std::unique_lock lock(mutex_);
  for (;;) {
    auto due = [&] { return written_ - synced_ >= every_bytes_; };
    changed_.wait(lock, [&] { return finishing_ || due(); });
    // A sync that was due still runs when Finish came meanwhile: what it writes, the caller's
    // fsync need not.
    if (!due()) return;
    synced_ = written_;
    lock.unlock();
    int result;
    do {
      result = scope_ == Scope::kFile ? ::fdatasync(fd_) : ::syncfs(fd_);
    } while (result != 0 && errno == EINTR);
    int error = result == 0 ? 0 : errno;
    lock.lock();
    if (error != 0 && error_.ok()) {
      error_ = ErrnoStatus(
          error, scope_ == Scope::kFile ? "fdatasync while writing" : "syncfs while writing");
    }
  }
}

}  // namespace kapal::base
