#include "base/files.h"

#include <sys/stat.h>

#include "base/temp_dir.h"
#include "gtest/gtest.h"

namespace kapal::base {
namespace {

TEST(FilesTest, WriteFileAtomicallyReplacesContentAndSetsMode) {
  auto dir = TempDir::Create("kapal-files");
  ASSERT_TRUE(dir.ok());
  std::string path = dir->Join("f");
  ASSERT_TRUE(WriteFileAtomically(path, "one", 0600).ok());
  ASSERT_TRUE(WriteFileAtomically(path, "two", 0600).ok());
  EXPECT_EQ(ReadFile(path).value_or(""), "two");
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST(FilesTest, ReadMissingFileIsNotFound) {
  EXPECT_EQ(ReadFile("/nonexistent/kapal").status().code(), absl::StatusCode::kNotFound);
}

TEST(FilesTest, MakeDirectoriesCreatesEveryLevelAndRejectsAFile) {
  auto dir = TempDir::Create("kapal-files");
  ASSERT_TRUE(dir.ok());
  ASSERT_TRUE(MakeDirectories(dir->Join("a/b/c"), 0755).ok());
  struct stat st {};
  EXPECT_EQ(::stat(dir->Join("a/b/c").c_str(), &st), 0);
  ASSERT_TRUE(MakeDirectories(dir->Join("a/b/c"), 0755).ok()) << "idempotent";
  ASSERT_TRUE(WriteFileAtomically(dir->Join("file"), "x").ok());
  EXPECT_FALSE(MakeDirectories(dir->Join("file"), 0755).ok());
}

TEST(FilesTest, FindExecutable) {
  EXPECT_EQ(FindExecutable("/bin/sh").value_or(""), "/bin/sh");
  EXPECT_TRUE(FindExecutable("sh").ok());
  EXPECT_EQ(FindExecutable("kapal-no-such-binary").status().code(), absl::StatusCode::kNotFound);
  auto dir = TempDir::Create("kapal-files");
  ASSERT_TRUE(dir.ok());
  // Root may execute any file with an x bit, so only a file without one is not executable.
  ASSERT_TRUE(WriteFileAtomically(dir->Join("data"), "x", 0644).ok());
  EXPECT_EQ(FindExecutable(dir->Join("data")).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(FindExecutable(dir->Path()).status().code(), absl::StatusCode::kNotFound);
}

TEST(TempDirTest, RemovedWithItsContentButNotThroughAMountPoint) {
  std::string path;
  {
    auto dir = TempDir::Create("kapal-temp");
    ASSERT_TRUE(dir.ok());
    path = dir->Path();
    ASSERT_TRUE(MakeDirectories(dir->Join("x/y"), 0755).ok());
    ASSERT_TRUE(WriteFileAtomically(dir->Join("x/y/z"), "z").ok());
    ASSERT_EQ(::symlink("/etc", dir->Join("link-to-etc").c_str()), 0);
  }
  struct stat st {};
  EXPECT_NE(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(::stat("/etc/hostname", &st), 0) << "a symlink is removed, not followed";
}

}  // namespace
}  // namespace kapal::base
