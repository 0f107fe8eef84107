#include "base/write_behind_sync.h"

#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "base/temp_dir.h"
#include "base/unique_fd.h"
#include "gtest/gtest.h"

namespace kapal::base {
namespace {

constexpr int64_t kEvery = 1 << 20;

// A pipe cannot be synced (EINVAL): whether a background sync ran shows in Finish's status.
struct Pipe {
  Pipe() {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    read_end = UniqueFd(fds[0]);
    write_end = UniqueFd(fds[1]);
  }
  UniqueFd read_end, write_end;
};

TEST(WriteBehindSyncTest, SyncsInTheBackgroundOnceEveryBytesWereWritten) {
  Pipe pipe;
  WriteBehindSync sync(pipe.write_end.Get(), kEvery);
  sync.Wrote(kEvery / 2);
  sync.Wrote(kEvery / 2);
  absl::Status finished = sync.Finish();
  // The background sync's error is kept for the caller: its own fsync would not see it.
  EXPECT_FALSE(finished.ok());
  EXPECT_NE(finished.message().find("fdatasync"), std::string::npos) << finished;
}

TEST(WriteBehindSyncTest, NoSyncBeforeEveryBytesAndNoneAfterFinish) {
  Pipe pipe;
  WriteBehindSync sync(pipe.write_end.Get(), kEvery);
  sync.Wrote(kEvery - 1);
  EXPECT_TRUE(sync.Finish().ok());
  sync.Wrote(kEvery);  // after Finish: ignored, no thread starts on a descriptor being closed
  EXPECT_TRUE(sync.Finish().ok());
}

TEST(WriteBehindSyncTest, AFileWrittenWhileItSyncsKeepsEveryByte) {
  absl::StatusOr<TempDir> dir = TempDir::Create("write-behind");
  ASSERT_TRUE(dir.ok()) << dir.status();
  std::string path = dir->Join("file");
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  ASSERT_TRUE(fd);
  std::string expected;
  {
    WriteBehindSync sync(fd.Get(), kEvery);
    std::string piece(256 * 1024, '\0');
    for (int i = 0; i < 24; ++i) {  // 6 MiB: six background syncs at most
      piece.assign(piece.size(), static_cast<char>('a' + i));
      ASSERT_EQ(::write(fd.Get(), piece.data(), piece.size()), static_cast<ssize_t>(piece.size()));
      sync.Wrote(static_cast<int64_t>(piece.size()));
      expected += piece;
    }
    EXPECT_TRUE(sync.Finish().ok());
  }
  std::string read(expected.size() + 1, '\0');
  UniqueFd reader(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_TRUE(reader);
  ASSERT_EQ(::pread(reader.Get(), read.data(), read.size(), 0),
            static_cast<ssize_t>(expected.size()));
  read.resize(expected.size());
  EXPECT_TRUE(read == expected);
}

}  // namespace
}  // namespace kapal::base
