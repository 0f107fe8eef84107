#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/write_behind_sync.h"
#include "images/byte_source.h"
#include "images/digest.h"
#include "store/store.h"

namespace kapal::images {

class ContentStore;
class WrittenPrefix;  // what a follower of a blob being written may read (content_store.cc)

// Receives one blob's bytes as they arrive (from a registry, an archive, a test). Commit checks
// size and digest and only then makes the blob visible; a writer destroyed without a successful
// Commit removes what it wrote, so every failure path keeps nothing.
class BlobWriter {
 public:
  ~BlobWriter();
  BlobWriter(const BlobWriter&) = delete;
  BlobWriter& operator=(const BlobWriter&) = delete;

  absl::Status Write(const char* data, size_t size);
  // Writes DATA at OFFSET, for a blob fetched in parallel ranges (callers may write disjoint
  // ranges from several threads at once). Do not mix with Write: Commit then hashes the whole
  // file, and the blob must be exactly its expected size.
  absl::Status WriteAt(int64_t offset, const char* data, size_t size);
  // Verifies, fsyncs, renames into place and records the blob; returns its size.
  absl::StatusOr<int64_t> Commit();
  // A reader of this blob while it is being written, so that a layer can be unpacked as it
  // downloads without a second copy of its bytes: it reads what was written from the start,
  // waits for more, and ends once Commit has written everything, before Commit checks the
  // digest (whatever the reader made must be kept only when Commit succeeds). It fails when
  // the writer is abandoned or dropped first. One per writer, taken before writing.
  absl::StatusOr<std::unique_ptr<ByteSource>> Follow();
  // Ends a follower's wait with WHY (the download failed).
  void Abandon(const absl::Status& why);
  // The blob's digest: the expected one, or for a writer of unknown content, what was written
  // (valid after Commit).
  const Digest& BlobDigest() const { return expected_; }
  int64_t Written() const { return written_ + positional_bytes_; }

 private:
  friend class ContentStore;
  BlobWriter(ContentStore& content, Digest expected, bool verify, int64_t expected_size,
             std::string media_type, std::string temp_path, int fd, Hasher hasher);

  ContentStore& content_;
  Digest expected_;
  bool verify_;  // false: content whose digest is learned by writing it (docker save files)
  int64_t expected_size_;
  std::string media_type_;
  std::string temp_path_;
  int fd_;
  // Background fdatasyncs while the blob downloads, so that Commit's fsync waits only for the
  // tail; finished before fd_ is closed.
  base::WriteBehindSync write_behind_;
  absl::Status Flush();
  absl::Status HashFile();
  std::shared_ptr<WrittenPrefix> followed_;  // set by Follow
  int64_t flushed_ = 0;                      // bytes written to the file so far
  std::atomic<bool> positional_{false};
  std::atomic<int64_t> positional_bytes_{0};

  Hasher hasher_;
  // Registries' bytes arrive in pieces of whatever size the socket or TLS had ready (often a
  // few KiB); they are gathered here so that the disk sees a few large writes.
  std::string pending_;
  int64_t written_ = 0;
  bool committed_ = false;
};

// Blobs (manifests, configs, layers) stored by digest under ROOT/blobs/ALGORITHM/HEX, as in an
// OCI image layout. A blob becomes visible only once its size and digest match what was
// expected: it is written to ROOT/ingest first, fsynced, then renamed into place and recorded
// in the store. A mismatch keeps nothing.
class ContentStore {
 public:
  static absl::StatusOr<std::unique_ptr<ContentStore>> Open(std::string root, store::Store& store);

  // A writer for blob EXPECTED of EXPECTED_SIZE bytes (< 0: unknown). Callers check Has()
  // first when they want to skip a download.
  absl::StatusOr<std::unique_ptr<BlobWriter>> Writer(const Digest& expected, int64_t expected_size,
                                                     const std::string& media_type = "");
  // A writer for content whose digest is not known in advance: it is stored under the sha256
  // of what was written.
  absl::StatusOr<std::unique_ptr<BlobWriter>> WriterForUnknown(const std::string& media_type = "");
  // Writes DATA as blob EXPECTED (nothing happens when it is already present).
  absl::StatusOr<int64_t> IngestBytes(const Digest& expected, const std::string& data,
                                      const std::string& media_type = "");

  bool Has(const Digest& digest) const;
  std::string PathOf(const Digest& digest) const;
  absl::StatusOr<std::string> ReadAll(const Digest& digest) const;
  absl::StatusOr<int64_t> SizeOf(const Digest& digest) const;
  // Removes the blob; removing one that is absent succeeds.
  absl::Status Remove(const Digest& digest);
  std::vector<Digest> List() const;
  // Bytes and number of the blobs held, from the store's records (no walk of the disk).
  absl::StatusOr<std::pair<int64_t, int64_t>> Totals() const;

  // Removes ingest files left by a crash mid-download.
  absl::Status CleanIngest();
  const std::string& Root() const { return root_; }

 private:
  friend class BlobWriter;
  absl::Status Record(const Digest& digest, int64_t size, const std::string& media_type);
  ContentStore(std::string root, store::Store& store) : root_(std::move(root)), store_(store) {}
  std::string root_;
  store::Store& store_;
};

}  // namespace kapal::images
