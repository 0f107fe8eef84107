#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "absl/status/status.h"

namespace kapal::base {

// Keeps the disk writing a file while it is still being written: each time EVERY_BYTES more
// were written, a thread of its own fdatasyncs the file, so that the writer's own fsync at the
// end waits only for the last piece. A hint alone (sync_file_range) does not do it where a
// flush is what writes (a virtual disk whose host caches the writes until the guest flushes:
// on the development machine a 50 MB blob's fsync took 0.2 s after the download whether or
// not sync_file_range had started its writeback, 0.01 s after background syncs every 8 MiB).
// The thread starts at the first EVERY_BYTES, so small files never get one.
class WriteBehindSync {
 public:
  enum class Scope {
    kFile,        // fdatasync of FD, for one file being written
    kFilesystem,  // syncfs of FD's filesystem, for many files (a layer's tree) being written
  };
  WriteBehindSync(int fd, int64_t every_bytes, Scope scope = Scope::kFile)
      : fd_(fd), every_bytes_(every_bytes), scope_(scope) {}
  WriteBehindSync(const WriteBehindSync&) = delete;
  WriteBehindSync& operator=(const WriteBehindSync&) = delete;
  ~WriteBehindSync() { (void)Finish(); }

  // BYTES more were written to the file or filesystem (any thread).
  void Wrote(int64_t bytes);
  // Stops the background syncs, waiting for one that runs, and returns the first error one of
  // them met. The caller must check it: the kernel reports a write-back error once per open
  // file, so the caller's own fsync on the same descriptor would not see it again. The
  // descriptor may be closed once this returned.
  absl::Status Finish();

 private:
  void Run();

  const int fd_;
  const int64_t every_bytes_;
  const Scope scope_;
  std::mutex mutex_;
  std::condition_variable changed_;
  int64_t written_ = 0;
  int64_t synced_ = 0;  // written_ as of the start of the last background sync
  bool finishing_ = false;
  absl::Status error_;
  std::thread thread_;
};

}  // namespace kapal::base
