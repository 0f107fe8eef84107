#include "images/content_store.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <dirent.h>

#include <algorithm>
#include <thread>
#include <vector>

#include "base/files.h"
#include "base/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fixtures/image_stack.h"

namespace kapal::images {
namespace {

using ::testing::HasSubstr;

class ContentStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto stack = testing::ImageStack::Create();
    ASSERT_TRUE(stack.ok()) << stack.status();
    stack_ = std::move(*stack);
    store_ = stack_->store.get();
    content_ = stack_->content.get();
  }

  int IngestEntries() {
    int count = 0;
    DIR* dir = ::opendir((content_->Root() + "/ingest").c_str());
    while (dirent* entry = ::readdir(dir)) count += entry->d_name[0] != '.';
    ::closedir(dir);
    return count;
  }

  int ContentRows() {
    int rows = 0;
    EXPECT_TRUE(store_
                    ->WithDatabase([&](SQLite::Database& db) {
                      rows = db.execAndGet("SELECT COUNT(*) FROM content").getInt();
                    })
                    .ok());
    return rows;
  }

  std::unique_ptr<testing::ImageStack> stack_;
  store::Store* store_ = nullptr;
  ContentStore* content_ = nullptr;
};

TEST_F(ContentStoreTest, VerifiedBlobBecomesVisible) {
  std::string data = "layer bytes";
  Digest digest = Digest::Sha256Of(data);
  auto size = content_->IngestBytes(digest, data, "application/vnd.oci.image.layer.v1.tar");
  ASSERT_TRUE(size.ok()) << size.status();
  EXPECT_EQ(*size, static_cast<int64_t>(data.size()));
  EXPECT_TRUE(content_->Has(digest));
  EXPECT_EQ(content_->ReadAll(digest).value_or(""), data);
  EXPECT_EQ(content_->PathOf(digest), content_->Root() + "/blobs/sha256/" + digest.Hex());
  EXPECT_THAT(content_->List(), ::testing::ElementsAre(digest));
  auto totals = content_->Totals();
  ASSERT_TRUE(totals.ok());
  EXPECT_EQ(totals->first, static_cast<int64_t>(data.size()));
  EXPECT_EQ(totals->second, 1);
  EXPECT_EQ(IngestEntries(), 0);
}

TEST_F(ContentStoreTest, DigestMismatchKeepsNothing) {
  Digest expected = Digest::Sha256Of("what the manifest promised");
  auto size = content_->IngestBytes(expected, "what the registry served");
  ASSERT_FALSE(size.ok());
  EXPECT_EQ(size.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(size.status().message()), HasSubstr(expected.String()));
  EXPECT_THAT(std::string(size.status().message()), HasSubstr("digest mismatch (got sha256:"));
  EXPECT_FALSE(content_->Has(expected));
  EXPECT_EQ(IngestEntries(), 0);
  EXPECT_EQ(ContentRows(), 0);
}

TEST_F(ContentStoreTest, SizeMismatchKeepsNothing) {
  std::string data = "twelve bytes";
  Digest digest = Digest::Sha256Of(data);
  {
    auto writer = content_->Writer(digest, 100);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Write(data.data(), data.size()).ok());
    auto committed = (*writer)->Commit();
    EXPECT_EQ(committed.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(std::string(committed.status().message()), HasSubstr("size mismatch"));
  }
  {
    auto writer = content_->Writer(digest, 5);
    ASSERT_TRUE(writer.ok());
    EXPECT_EQ((*writer)->Write(data.data(), data.size()).code(), absl::StatusCode::kDataLoss);
  }
  EXPECT_FALSE(content_->Has(digest));
  EXPECT_EQ(IngestEntries(), 0);
}

TEST_F(ContentStoreTest, AbandonedWriterKeepsNothing) {
  // A download that breaks off: the writer goes out of scope without Commit.
  Digest digest = Digest::Sha256Of("complete content");
  {
    auto writer = content_->Writer(digest, -1);
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE((*writer)->Write("comp", 4).ok());
    EXPECT_EQ(IngestEntries(), 1);
  }
  EXPECT_FALSE(content_->Has(digest));
  EXPECT_EQ(IngestEntries(), 0);
  EXPECT_EQ(ContentRows(), 0);
}

// Blobs of more than 8 MiB are synced in the background while they are written: the blob
// keeps every byte, and a writer dropped midway (its sync may be running) keeps nothing.
TEST_F(ContentStoreTest, LargeBlobSyncedWhileWrittenKeepsEveryByteOrNothing) {
  std::string data;
  for (int i = 0; i < 20 << 20; ++i) data += static_cast<char>('a' + i % 29);
  Digest digest = Digest::Sha256Of(data);
  {
    auto dropped = content_->Writer(digest, static_cast<int64_t>(data.size()));
    ASSERT_TRUE(dropped.ok());
    ASSERT_TRUE((*dropped)->Write(data.data(), 12 << 20).ok());
  }
  EXPECT_FALSE(content_->Has(digest));
  EXPECT_EQ(IngestEntries(), 0);
  auto writer = content_->Writer(digest, static_cast<int64_t>(data.size()));
  ASSERT_TRUE(writer.ok());
  for (size_t at = 0; at < data.size(); at += 64 * 1024) {
    ASSERT_TRUE(
        (*writer)->Write(data.data() + at, std::min<size_t>(64 * 1024, data.size() - at)).ok());
  }
  auto committed = (*writer)->Commit();
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_EQ(*committed, static_cast<int64_t>(data.size()));
  EXPECT_TRUE(content_->ReadAll(digest).value_or("") == data);
  EXPECT_EQ(IngestEntries(), 0);
}

// Everything a follower reads, in order, until its end or error.
absl::StatusOr<std::string> ReadAllFrom(ByteSource& source) {
  std::string all;
  std::vector<uint8_t> buffer(1000);
  for (;;) {
    absl::StatusOr<size_t> n = source.Read(buffer.data(), buffer.size());
    if (!n.ok()) return n.status();
    if (*n == 0) return all;
    all.append(reinterpret_cast<const char*>(buffer.data()), *n);
  }
}

// A follower reads a blob while it is written, in order even when the pieces arrive out of
// order (parallel ranges), and ends once Commit has everything.
TEST_F(ContentStoreTest, FollowerReadsTheBlobWhileItIsWritten) {
  std::string data;
  for (int i = 0; i < 3 << 20; ++i) data += static_cast<char>('a' + i % 23);
  Digest digest = Digest::Sha256Of(data);
  for (bool out_of_order : {false, true}) {
    SCOPED_TRACE(out_of_order ? "positional, out of order" : "in order");
    ASSERT_TRUE(content_->Remove(digest).ok());
    auto writer = content_->Writer(digest, static_cast<int64_t>(data.size()));
    ASSERT_TRUE(writer.ok());
    auto follower = (*writer)->Follow();
    ASSERT_TRUE(follower.ok()) << follower.status();
    EXPECT_EQ((*writer)->Follow().status().code(), absl::StatusCode::kFailedPrecondition);
    absl::StatusOr<std::string> read = absl::UnknownError("not run");
    std::thread reader([&] { read = ReadAllFrom(**follower); });
    size_t third = data.size() / 3;
    if (out_of_order) {
      // The last piece first: nothing can be read until the first is there.
      ASSERT_TRUE(
          (*writer)->WriteAt(2 * third, data.data() + 2 * third, data.size() - 2 * third).ok());
      ASSERT_TRUE((*writer)->WriteAt(0, data.data(), third).ok());
      ASSERT_TRUE((*writer)->WriteAt(third, data.data() + third, third).ok());
    } else {
      for (size_t at = 0; at < data.size(); at += 4096) {
        ASSERT_TRUE(
            (*writer)->Write(data.data() + at, std::min<size_t>(4096, data.size() - at)).ok());
      }
    }
    auto committed = (*writer)->Commit();
    ASSERT_TRUE(committed.ok()) << committed.status();
    reader.join();
    ASSERT_TRUE(read.ok()) << read.status();
    EXPECT_TRUE(*read == data);
  }
}

// A download that fails ends the follower's wait with the download's error; a writer dropped
// without Commit ends it too.
TEST_F(ContentStoreTest, FollowerFailsWhenTheDownloadIsAbandoned) {
  Digest digest = Digest::Sha256Of("never complete");
  {
    auto writer = content_->Writer(digest, 14);
    ASSERT_TRUE(writer.ok());
    auto follower = (*writer)->Follow();
    ASSERT_TRUE(follower.ok());
    ASSERT_TRUE((*writer)->Write("never", 5).ok());
    absl::StatusOr<std::string> read = absl::UnknownError("not run");
    std::thread reader([&] { read = ReadAllFrom(**follower); });
    (*writer)->Abandon(absl::UnavailableError("connection reset"));
    reader.join();
    EXPECT_EQ(read.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(std::string(read.status().message()), HasSubstr("connection reset"));
  }
  std::unique_ptr<ByteSource> orphan;
  {
    auto writer = content_->Writer(digest, 14);
    ASSERT_TRUE(writer.ok());
    auto follower = (*writer)->Follow();
    ASSERT_TRUE(follower.ok());
    orphan = std::move(*follower);
  }
  auto read = ReadAllFrom(*orphan);
  EXPECT_EQ(read.status().code(), absl::StatusCode::kAborted) << read.status();
  EXPECT_FALSE(content_->Has(digest));
  EXPECT_EQ(IngestEntries(), 0);
}

TEST_F(ContentStoreTest, TwoWritersOfOneBlobBothSucceed) {
  std::string data = "shared layer";
  Digest digest = Digest::Sha256Of(data);
  auto first = content_->Writer(digest, static_cast<int64_t>(data.size()));
  auto second = content_->Writer(digest, static_cast<int64_t>(data.size()));
  ASSERT_TRUE(first.ok() && second.ok());
  ASSERT_TRUE((*first)->Write(data.data(), data.size()).ok());
  ASSERT_TRUE((*second)->Write(data.data(), data.size()).ok());
  EXPECT_TRUE((*first)->Commit().ok());
  EXPECT_TRUE((*second)->Commit().ok());
  EXPECT_EQ(content_->ReadAll(digest).value_or(""), data);
  EXPECT_EQ(ContentRows(), 1);
}

TEST_F(ContentStoreTest, PresentBlobIsNotWrittenAgain) {
  std::string data = "same";
  Digest digest = Digest::Sha256Of(data);
  ASSERT_TRUE(content_->IngestBytes(digest, data).ok());
  auto again = content_->IngestBytes(digest, data);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 4);
  EXPECT_EQ(IngestEntries(), 0);
}

TEST_F(ContentStoreTest, RemoveForgetsTheBlobAndIsIdempotent) {
  std::string data = "gone soon";
  Digest digest = Digest::Sha256Of(data);
  ASSERT_TRUE(content_->IngestBytes(digest, data).ok());
  ASSERT_TRUE(content_->Remove(digest).ok());
  EXPECT_FALSE(content_->Has(digest));
  EXPECT_EQ(ContentRows(), 0);
  EXPECT_TRUE(content_->Remove(digest).ok());
  EXPECT_EQ(content_->ReadAll(digest).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ContentStoreTest, IngestLeftoversFromACrashAreCleanedAtOpen) {
  ASSERT_TRUE(base::WriteFileAtomically(content_->Root() + "/ingest/abc-1-0", "partial").ok());
  auto reopened = ContentStore::Open(content_->Root(), *store_);
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ(IngestEntries(), 0);
}

TEST_F(ContentStoreTest, UnsupportedAlgorithmIsRefused) {
  auto digest =
      Digest::Parse("blake3:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
  ASSERT_TRUE(digest.ok());
  EXPECT_EQ(content_->IngestBytes(*digest, "x").status().code(), absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace kapal::images
