#include "images/content_store.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "base/unique_fd.h"

namespace kapal::images {

namespace {

constexpr size_t kWriteChunk = 1 << 20;
// How much of a blob is written between two of its background syncs. 4, 8 and 16 MiB did the
// same for three 50 MB blobs written at once (the final fsync 0.01 s instead of 0.2 s).
constexpr int64_t kWriteBehindBytes = 8 << 20;

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

absl::Status WriteAll(int fd, const char* data, size_t size, const std::string& path) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      return base::ErrnoStatus(errno, "write " + path);
    }
    data += n;
    size -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

}  // namespace

// How much of a blob being written can be read from its start: pieces written out of order
// (parallel ranges) join the prefix once the bytes before them are there.
class WrittenPrefix {
 public:
  void Add(int64_t offset, int64_t length) {
    std::lock_guard lock(mutex_);
    int64_t before = prefix_;
    if (offset <= prefix_) {
      prefix_ = std::max(prefix_, offset + length);
    } else {
      int64_t& end = pieces_[offset];
      end = std::max(end, offset + length);
    }
    while (!pieces_.empty() && pieces_.begin()->first <= prefix_) {
      prefix_ = std::max(prefix_, pieces_.begin()->second);
      pieces_.erase(pieces_.begin());
    }
    if (prefix_ != before) changed_.notify_all();
  }
  void Finish(int64_t total) {
    std::lock_guard lock(mutex_);
    prefix_ = total;
    finished_ = true;
    changed_.notify_all();
  }
  void Abandon(const absl::Status& why) {
    std::lock_guard lock(mutex_);
    if (finished_ || !abandoned_.ok()) return;
    abandoned_ = why;
    changed_.notify_all();
  }
  // The end of the readable prefix once it is beyond OFFSET; OFFSET itself at the end of the
  // blob; the reason when the writing was abandoned.
  absl::StatusOr<int64_t> WaitBeyond(int64_t offset) {
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return prefix_ > offset || finished_ || !abandoned_.ok(); });
    if (!abandoned_.ok()) return abandoned_;
    return std::max(prefix_, offset);
  }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  int64_t prefix_ = 0;
  std::map<int64_t, int64_t> pieces_;  // start -> end, beyond the prefix
  bool finished_ = false;
  absl::Status abandoned_;
};

namespace {

// Reads a blob file while its writer is still writing it, never past what WrittenPrefix says
// is there.
class FollowingReader : public ByteSource {
 public:
  FollowingReader(base::UniqueFd fd, std::string path, std::shared_ptr<WrittenPrefix> written)
      : fd_(std::move(fd)), path_(std::move(path)), written_(std::move(written)) {}

  absl::StatusOr<size_t> Read(uint8_t* buffer, size_t size) override {
    absl::StatusOr<int64_t> end = written_->WaitBeyond(offset_);
    if (!end.ok()) return end.status();
    size_t wanted = std::min(size, static_cast<size_t>(*end - offset_));
    if (wanted == 0) return 0;
    ssize_t n;
    do {
      n = ::pread(fd_.Get(), buffer, wanted, static_cast<off_t>(offset_));
    } while (n < 0 && errno == EINTR);
    if (n < 0) return base::ErrnoStatus(errno, "read " + path_);
    if (n == 0) return absl::InternalError(absl::StrCat("read ", path_, ": ended early"));
    offset_ += n;
    return static_cast<size_t>(n);
  }

 private:
  base::UniqueFd fd_;
  std::string path_;
  std::shared_ptr<WrittenPrefix> written_;
  int64_t offset_ = 0;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ContentStore>> ContentStore::Open(std::string root,
                                                                 store::Store& store) {
  for (const char* sub : {"/blobs/sha256", "/blobs/sha512", "/ingest"}) {
    if (absl::Status made = base::MakeDirectories(root + sub, 0700); !made.ok()) return made;
  }
  auto content = std::unique_ptr<ContentStore>(new ContentStore(std::move(root), store));
  if (absl::Status cleaned = content->CleanIngest(); !cleaned.ok()) return cleaned;
  return content;
}

std::string ContentStore::PathOf(const Digest& digest) const {
  return absl::StrCat(root_, "/blobs/", digest.Algorithm(), "/", digest.Hex());
}

bool ContentStore::Has(const Digest& digest) const {
  struct stat st {};
  return ::stat(PathOf(digest).c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

absl::StatusOr<int64_t> ContentStore::SizeOf(const Digest& digest) const {
  struct stat st {};
  if (::stat(PathOf(digest).c_str(), &st) != 0) {
    return absl::NotFoundError(
        absl::StrCat("blob ", digest.String(), " is not in the content store"));
  }
  return static_cast<int64_t>(st.st_size);
}

BlobWriter::BlobWriter(ContentStore& content, Digest expected, bool verify, int64_t expected_size,
                       std::string media_type, std::string temp_path, int fd, Hasher hasher)
    : content_(content),
      expected_(std::move(expected)),
      verify_(verify),
      expected_size_(expected_size),
      media_type_(std::move(media_type)),
      temp_path_(std::move(temp_path)),
      fd_(fd),
      write_behind_(fd, kWriteBehindBytes),
      hasher_(std::move(hasher)) {
  pending_.reserve(kWriteChunk + 64 * 1024);
}

BlobWriter::~BlobWriter() {
  Abandon(
      absl::AbortedError(absl::StrCat("the download of blob ", expected_.String(), " stopped")));
  (void)write_behind_.Finish();  // its thread may be syncing fd_
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(temp_path_.c_str());
}

absl::Status BlobWriter::Write(const char* data, size_t size) {
  if (committed_ || fd_ < 0) return absl::FailedPreconditionError("blob writer is closed");
  written_ += static_cast<int64_t>(size);
  if (expected_size_ >= 0 && written_ > expected_size_) {
    return absl::DataLossError(absl::StrCat("blob ", expected_.String(), ": more than the ",
                                            expected_size_, " bytes expected"));
  }
  hasher_.Update(data, size);
  pending_.append(data, size);
  if (pending_.size() >= kWriteChunk) return Flush();
  return absl::OkStatus();
}

absl::Status BlobWriter::WriteAt(int64_t offset, const char* data, size_t size) {
  if (committed_ || fd_ < 0) return absl::FailedPreconditionError("blob writer is closed");
  if (offset < 0 || (expected_size_ >= 0 && offset + static_cast<int64_t>(size) > expected_size_)) {
    return absl::DataLossError(absl::StrCat("blob ", expected_.String(), ": bytes beyond the ",
                                            expected_size_, " expected"));
  }
  positional_ = true;
  while (size > 0) {
    ssize_t n = ::pwrite(fd_, data, size, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return base::ErrnoStatus(errno, "write " + temp_path_);
    if (followed_ != nullptr) followed_->Add(offset, n);
    write_behind_.Wrote(n);
    data += n;
    size -= static_cast<size_t>(n);
    offset += n;
    positional_bytes_ += n;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ByteSource>> BlobWriter::Follow() {
  if (followed_ != nullptr || Written() > 0) {
    return absl::FailedPreconditionError("a blob is followed once, before it is written");
  }
  base::UniqueFd fd(::open(temp_path_.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return base::ErrnoStatus(errno, "open " + temp_path_);
  followed_ = std::make_shared<WrittenPrefix>();
  return std::unique_ptr<ByteSource>(
      std::make_unique<FollowingReader>(std::move(fd), temp_path_, followed_));
}

void BlobWriter::Abandon(const absl::Status& why) {
  if (followed_ != nullptr) followed_->Abandon(why);
}

absl::Status BlobWriter::HashFile() {
  std::vector<char> buffer(1 << 20);
  int64_t read = 0;
  for (;;) {
    ssize_t n = ::pread(fd_, buffer.data(), buffer.size(), static_cast<off_t>(read));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return base::ErrnoStatus(errno, "read " + temp_path_);
    if (n == 0) break;
    hasher_.Update(buffer.data(), static_cast<size_t>(n));
    read += n;
  }
  written_ = read;
  return absl::OkStatus();
}

absl::Status BlobWriter::Flush() {
  absl::Status status = WriteAll(fd_, pending_.data(), pending_.size(), temp_path_);
  if (status.ok() && !pending_.empty()) {
    if (followed_ != nullptr) followed_->Add(flushed_, static_cast<int64_t>(pending_.size()));
    write_behind_.Wrote(static_cast<int64_t>(pending_.size()));
    flushed_ += static_cast<int64_t>(pending_.size());
  }
  pending_.clear();
  return status;
}

absl::StatusOr<int64_t> BlobWriter::Commit() {
  if (committed_ || fd_ < 0) return absl::FailedPreconditionError("blob writer is closed");
  if (absl::Status flushed = Flush(); !flushed.ok()) {
    Abandon(flushed);
    return flushed;
  }
  // Everything is in the file: a follower reads to its end while the digest is checked and the
  // file synced.
  if (followed_ != nullptr) followed_->Finish(written_ + positional_bytes_);
  // Pieces written out of order (parallel ranges): the digest is taken over the whole file.
  if (positional_) {
    if (written_ > 0 || positional_bytes_ != expected_size_) {
      return absl::DataLossError(absl::StrCat("blob ", expected_.String(), ": got ",
                                              written_ + positional_bytes_, " of ", expected_size_,
                                              " bytes"));
    }
    if (absl::Status hashed = HashFile(); !hashed.ok()) return hashed;
  }
  if (expected_size_ >= 0 && written_ != expected_size_) {
    return absl::DataLossError(absl::StrCat("blob ", expected_.String(), ": size mismatch (got ",
                                            written_, " bytes, expected ", expected_size_, ")"));
  }
  Digest actual = hasher_.Finish();
  if (!verify_) expected_ = actual;
  if (actual != expected_) {
    return absl::DataLossError(
        absl::StrCat("blob ", expected_.String(), ": digest mismatch (got ", actual.String(), ")"));
  }
  if (absl::Status synced = write_behind_.Finish(); !synced.ok()) {
    return absl::Status(synced.code(), absl::StrCat(temp_path_, ": ", synced.message()));
  }
  if (::fsync(fd_) != 0) return base::ErrnoStatus(errno, "fsync " + temp_path_);
  ::close(fd_);
  fd_ = -1;
  std::string final_path = content_.PathOf(expected_);
  if (::rename(temp_path_.c_str(), final_path.c_str()) != 0) {
    return base::ErrnoStatus(errno, "rename " + temp_path_);
  }
  committed_ = true;
  // The rename must reach the disk before the row that says the blob exists.
  base::UniqueFd dir(::open(final_path.substr(0, final_path.rfind('/')).c_str(),
                            O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir) ::fsync(dir.Get());
  if (absl::Status recorded = content_.Record(expected_, written_, media_type_); !recorded.ok()) {
    return recorded;
  }
  return written_;
}

absl::StatusOr<std::unique_ptr<BlobWriter>> ContentStore::Writer(const Digest& expected,
                                                                 int64_t expected_size,
                                                                 const std::string& media_type) {
  absl::StatusOr<Hasher> hasher = Hasher::ForAlgorithm(expected.Algorithm());
  if (!hasher.ok()) return hasher.status();
  // Unique per writer, so two pulls of one blob never write the same file.
  static std::atomic<uint64_t> counter{0};
  std::string temp = absl::StrFormat("%s/ingest/%s-%d-%d", root_, expected.Hex(), ::getpid(),
                                     counter.fetch_add(1));
  // Read and write: a blob fetched in ranges is hashed from the file at Commit.
  int fd = ::open(temp.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return base::ErrnoStatus(errno, "create " + temp);
  // The whole blob's blocks reserved at once: ext4 then maps each written page to a block it
  // already has instead of reserving one per page (3-4% of a random-layer pull's CPU), and the
  // blob lies in one piece on disk. Only a hint: a filesystem without fallocate writes as usual.
  if (expected_size > 0) (void)::fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, expected_size);
  return std::unique_ptr<BlobWriter>(new BlobWriter(*this, expected, /*verify=*/true, expected_size,
                                                    media_type, std::move(temp), fd,
                                                    std::move(*hasher)));
}

absl::StatusOr<std::unique_ptr<BlobWriter>> ContentStore::WriterForUnknown(
    const std::string& media_type) {
  absl::StatusOr<std::unique_ptr<BlobWriter>> writer =
      Writer(Digest::Sha256Of(""), /*expected_size=*/-1, media_type);
  if (writer.ok()) (*writer)->verify_ = false;
  return writer;
}

absl::Status ContentStore::Record(const Digest& digest, int64_t size,
                                  const std::string& media_type) {
  return store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement insert(db,
                             "INSERT INTO content(digest, size, media_type, created_at) "
                             "VALUES(?, ?, ?, ?) ON CONFLICT(digest) DO NOTHING");
    insert.bind(1, digest.String());
    insert.bind(2, size);
    insert.bind(3, media_type);
    insert.bind(4, NowSeconds());
    insert.exec();
  });
}

absl::StatusOr<int64_t> ContentStore::IngestBytes(const Digest& expected, const std::string& data,
                                                  const std::string& media_type) {
  if (Has(expected)) return SizeOf(expected);
  absl::StatusOr<std::unique_ptr<BlobWriter>> writer =
      Writer(expected, static_cast<int64_t>(data.size()), media_type);
  if (!writer.ok()) return writer.status();
  if (absl::Status written = (*writer)->Write(data.data(), data.size()); !written.ok()) {
    return written;
  }
  return (*writer)->Commit();
}

absl::StatusOr<std::string> ContentStore::ReadAll(const Digest& digest) const {
  absl::StatusOr<std::string> data = base::ReadFile(PathOf(digest));
  if (!data.ok() && absl::IsNotFound(data.status())) {
    return absl::NotFoundError(
        absl::StrCat("blob ", digest.String(), " is not in the content store"));
  }
  return data;
}

absl::Status ContentStore::Remove(const Digest& digest) {
  absl::Status forgotten = store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement remove(db, "DELETE FROM content WHERE digest = ?");
    remove.bind(1, digest.String());
    remove.exec();
  });
  if (!forgotten.ok()) return forgotten;
  if (::unlink(PathOf(digest).c_str()) != 0 && errno != ENOENT) {
    return base::ErrnoStatus(errno, "remove " + PathOf(digest));
  }
  return absl::OkStatus();
}

std::vector<Digest> ContentStore::List() const {
  std::vector<Digest> digests;
  (void)store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement query(db, "SELECT digest FROM content ORDER BY digest");
    while (query.executeStep()) {
      if (auto digest = Digest::Parse(query.getColumn(0).getString()); digest.ok()) {
        digests.push_back(*digest);
      }
    }
  });
  return digests;
}

absl::StatusOr<std::pair<int64_t, int64_t>> ContentStore::Totals() const {
  std::pair<int64_t, int64_t> totals;
  absl::Status status = store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement query(db, "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM content");
    query.executeStep();
    totals = {query.getColumn(0).getInt64(), query.getColumn(1).getInt64()};
  });
  if (!status.ok()) return status;
  return totals;
}

absl::Status ContentStore::CleanIngest() {
  std::string ingest = root_ + "/ingest";
  if (absl::Status removed = base::RemoveTree(ingest); !removed.ok()) return removed;
  return base::MakeDirectories(ingest, 0700);
}

}  // namespace kapal::images
