#include "images/unpack.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include "base/files.h"
#include "base/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fixtures/test_image.h"

namespace kapal::images {
namespace {

using testing::BuildLayer;
using testing::Compression;
using ::testing::HasSubstr;
using testing::LayerEntry;
using Kind = testing::LayerEntry::Kind;

class UnpackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = base::TempDir::Create("kapal-unpack");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(*dir));
    root_ = dir_->Join("root");
    ASSERT_TRUE(base::MakeDirectories(root_, 0755).ok());
  }

  absl::StatusOr<UnpackedLayer> Unpack(const std::vector<LayerEntry>& entries,
                                       Compression compression = Compression::kGzip,
                                       WhiteoutStyle style = WhiteoutStyle::kOverlay) {
    auto layer = BuildLayer(entries, compression);
    if (!layer.ok()) return layer.status();
    std::string blob = dir_->Join("blob" + std::to_string(counter_++));
    if (auto written = base::WriteFileAtomically(blob, layer->data); !written.ok()) return written;
    auto diff_id = Digest::Parse(layer->diff_id);
    return UnpackLayer(blob, root_, style, &*diff_id);
  }

  struct stat Lstat(const std::string& relative) {
    struct stat st {};
    EXPECT_EQ(::lstat((root_ + "/" + relative).c_str(), &st), 0) << relative;
    return st;
  }
  bool Exists(const std::string& path) {
    struct stat st {};
    return ::lstat(path.c_str(), &st) == 0;
  }

  std::optional<base::TempDir> dir_;
  std::string root_;
  int counter_ = 0;
};

TEST_F(UnpackTest, BusyboxRootfsInEveryCompression) {
  auto rootfs = testing::BusyboxRootfs();
  ASSERT_TRUE(rootfs.ok());
  for (Compression compression : {Compression::kNone, Compression::kGzip, Compression::kZstd}) {
    ASSERT_TRUE(base::RemoveTree(root_).ok());
    ASSERT_TRUE(base::MakeDirectories(root_, 0755).ok());
    auto unpacked = Unpack(*rootfs, compression);
    ASSERT_TRUE(unpacked.ok()) << unpacked.status();
    struct stat busybox = Lstat("bin/busybox");
    EXPECT_TRUE(S_ISREG(busybox.st_mode));
    EXPECT_EQ(busybox.st_mode & 07777, 0755u);
    EXPECT_GT(busybox.st_size, 100000);
    EXPECT_TRUE(S_ISLNK(Lstat("bin/sh").st_mode));
    EXPECT_EQ(Lstat("tmp").st_mode & 07777, 01777u);
    EXPECT_EQ(Lstat("bin/busybox").st_mtime, 1700000000);
  }
}

TEST_F(UnpackTest, KeepsOwnersHardLinksAndDevices) {
  auto unpacked = Unpack({{Kind::kDirectory, "home", "", 0755},
                          {Kind::kFile, "home/app.txt", "mine", 0600, 1000, 2000},
                          {Kind::kHardlink, "home/link.txt", "home/app.txt"},
                          {Kind::kCharDevice, "dev-null", "", 0666, 0, 0, 1, 3}});
  ASSERT_TRUE(unpacked.ok()) << unpacked.status();
  struct stat file = Lstat("home/app.txt");
  EXPECT_EQ(file.st_uid, 1000u);
  EXPECT_EQ(file.st_gid, 2000u);
  EXPECT_EQ(file.st_mode & 0777, 0600u);
  EXPECT_EQ(Lstat("home/link.txt").st_ino, file.st_ino);
  struct stat device = Lstat("dev-null");
  EXPECT_TRUE(S_ISCHR(device.st_mode));
  EXPECT_EQ(major(device.st_rdev), 1u);
  EXPECT_EQ(minor(device.st_rdev), 3u);
}

TEST_F(UnpackTest, OverlayWhiteoutsBecomeDevicesAndOpaqueXattrs) {
  auto unpacked = Unpack({{Kind::kDirectory, "etc", "", 0755},
                          {Kind::kFile, "etc/.wh.gone", ""},
                          {Kind::kDirectory, "var", "", 0755},
                          {Kind::kFile, "var/.wh..wh..opq", ""},
                          {Kind::kFile, "var/new", "n"}});
  ASSERT_TRUE(unpacked.ok()) << unpacked.status();
  struct stat whiteout = Lstat("etc/gone");
  EXPECT_TRUE(S_ISCHR(whiteout.st_mode));
  EXPECT_EQ(whiteout.st_rdev, makedev(0, 0));
  EXPECT_FALSE(Exists(root_ + "/etc/.wh.gone"));
  char value[8] = {};
  ASSERT_EQ(::lgetxattr((root_ + "/var").c_str(), "trusted.overlay.opaque", value, sizeof value),
            1);
  EXPECT_EQ(value[0], 'y');
  EXPECT_TRUE(Exists(root_ + "/var/new"));
}

TEST_F(UnpackTest, AppliedWhiteoutsDeleteFromLowerLayers) {
  ASSERT_TRUE(Unpack({{Kind::kDirectory, "etc", "", 0755},
                      {Kind::kFile, "etc/gone", "g"},
                      {Kind::kFile, "etc/kept", "k"},
                      {Kind::kDirectory, "var", "", 0755},
                      {Kind::kFile, "var/old", "o"}},
                     Compression::kGzip, WhiteoutStyle::kApply)
                  .ok());
  auto second = Unpack({{Kind::kFile, "etc/.wh.gone", ""},
                        {Kind::kFile, "var/new", "n"},
                        {Kind::kFile, "var/.wh..wh..opq", ""}},
                       Compression::kGzip, WhiteoutStyle::kApply);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_FALSE(Exists(root_ + "/etc/gone"));
  EXPECT_TRUE(Exists(root_ + "/etc/kept"));
  EXPECT_FALSE(Exists(root_ + "/var/old")) << "opaque: the lower layer's entry is gone";
  EXPECT_TRUE(Exists(root_ + "/var/new")) << "opaque: this layer's entry stays, whatever the order";
}

TEST_F(UnpackTest, ALaterLayerReplacesFilesLinksAndDirectoriesOfALowerOne) {
  // Unpacked over a lower layer's files (the native snapshotter's copy of its parent): what is
  // in the way is replaced, never written through.
  ASSERT_TRUE(Unpack({{Kind::kFile, "a", "old"},
                      {Kind::kSymlink, "b", "a"},
                      {Kind::kFile, "c", "shared"},
                      {Kind::kHardlink, "d", "c"},
                      {Kind::kDirectory, "f", "", 0755},
                      {Kind::kFile, "g", "file"},
                      {Kind::kFile, "e", "lower"}},
                     Compression::kGzip, WhiteoutStyle::kApply)
                  .ok());
  auto second = Unpack({{Kind::kFile, "a", "new"},
                        {Kind::kFile, "b", "own"},
                        {Kind::kFile, "d", "changed"},
                        {Kind::kFile, "f", "now a file"},
                        {Kind::kDirectory, "g", "", 0755},
                        {Kind::kFile, "g/inner", "i"},
                        {Kind::kFile, "h", "first"},
                        {Kind::kFile, "h", "second"},
                        {Kind::kHardlink, "e", "a"}},
                       Compression::kGzip, WhiteoutStyle::kApply);
  ASSERT_TRUE(second.ok()) << second.status();
  auto read = [&](const std::string& relative) {
    return base::ReadFile(root_ + "/" + relative).value_or("<missing>");
  };
  EXPECT_EQ(read("a"), "new");
  EXPECT_TRUE(S_ISREG(Lstat("b").st_mode)) << "the symlink was replaced, not followed";
  EXPECT_EQ(read("b"), "own");
  EXPECT_EQ(read("c"), "shared") << "the other name of the hard link keeps its content";
  EXPECT_EQ(read("d"), "changed");
  EXPECT_NE(Lstat("c").st_ino, Lstat("d").st_ino);
  EXPECT_TRUE(S_ISREG(Lstat("f").st_mode));
  EXPECT_EQ(read("f"), "now a file");
  EXPECT_TRUE(S_ISDIR(Lstat("g").st_mode));
  EXPECT_EQ(read("g/inner"), "i");
  EXPECT_EQ(read("h"), "second") << "an entry twice in one layer: the last one wins";
  EXPECT_EQ(Lstat("e").st_ino, Lstat("a").st_ino) << "a hard link replaces the lower file";
}

TEST_F(UnpackTest, DotDotEntryIsRejected) {
  auto unpacked = Unpack({{Kind::kFile, "../escaped", "x"}});
  ASSERT_FALSE(unpacked.ok());
  EXPECT_EQ(unpacked.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(unpacked.status().message()), HasSubstr("leaves the root"));
  EXPECT_FALSE(Exists(dir_->Join("escaped")));
}

TEST_F(UnpackTest, WritingThroughASymlinkIsRejected) {
  std::string outside = dir_->Join("outside");
  ASSERT_TRUE(base::MakeDirectories(outside, 0755).ok());
  auto unpacked =
      Unpack({{Kind::kSymlink, "lib", outside, 0777}, {Kind::kFile, "lib/evil", "pwned"}});
  ASSERT_FALSE(unpacked.ok());
  EXPECT_EQ(unpacked.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(unpacked.status().message()), HasSubstr("through the symlink \"lib\""));
  EXPECT_FALSE(Exists(outside + "/evil"));
}

TEST_F(UnpackTest, RelativeSymlinkEscapeIsRejectedToo) {
  auto unpacked =
      Unpack({{Kind::kSymlink, "up", "../..", 0777}, {Kind::kFile, "up/evil", "pwned"}});
  ASSERT_FALSE(unpacked.ok());
  EXPECT_FALSE(Exists(dir_->Join("evil")));
}

TEST_F(UnpackTest, HardLinkOutOfTheRootIsRejected) {
  auto unpacked = Unpack({{Kind::kHardlink, "passwd", "../../etc/passwd"}});
  ASSERT_FALSE(unpacked.ok());
  EXPECT_EQ(unpacked.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(Exists(root_ + "/passwd"));
}

TEST_F(UnpackTest, AbsolutePathsStayInsideTheRoot) {
  auto unpacked = Unpack({{Kind::kFile, "/absolute", "a"}});
  ASSERT_TRUE(unpacked.ok()) << unpacked.status();
  EXPECT_TRUE(Exists(root_ + "/absolute"));
}

TEST_F(UnpackTest, DiffIdMismatchIsDataLoss) {
  auto layer = BuildLayer({{Kind::kFile, "a", "a"}}, Compression::kGzip);
  ASSERT_TRUE(layer.ok());
  std::string blob = dir_->Join("blob");
  ASSERT_TRUE(base::WriteFileAtomically(blob, layer->data).ok());
  Digest wrong = Digest::Sha256Of("something else");
  auto unpacked = UnpackLayer(blob, root_, WhiteoutStyle::kOverlay, &wrong);
  EXPECT_EQ(unpacked.status().code(), absl::StatusCode::kDataLoss);
  auto unchecked = UnpackLayer(blob, root_, WhiteoutStyle::kOverlay);
  ASSERT_TRUE(unchecked.ok());
  EXPECT_EQ(unchecked->diff_id.String(), layer->diff_id);
}

// A layer of many pieces: the inflate runs ahead of the files on a thread of its own, and every
// byte still arrives in order, hashed once; a refused entry ends the unpack wherever it is, the
// inflate stopped with it.
TEST_F(UnpackTest, ALayerOfManyPiecesArrivesWholeAndARefusalStopsItAnywhere) {
  auto text = [](int file) {
    std::string content;
    for (int line = 0; content.size() < (1u << 20) + 777; ++line) {
      content += "file " + std::to_string(file) + " line " + std::to_string(line) + "\n";
    }
    return content;
  };
  std::vector<LayerEntry> entries = {{Kind::kDirectory, "data", "", 0755}};
  for (int i = 0; i < 12; ++i)
    entries.push_back({Kind::kFile, "data/" + std::to_string(i), text(i)});
  auto unpacked = Unpack(entries);
  ASSERT_TRUE(unpacked.ok()) << unpacked.status();
  EXPECT_GT(unpacked->uncompressed_bytes, 12 << 20);
  for (int i = 0; i < 12; ++i) {
    EXPECT_EQ(base::ReadFile(root_ + "/data/" + std::to_string(i)).value_or(""), text(i)) << i;
  }

  for (bool first : {true, false}) {
    std::vector<LayerEntry> refused = entries;
    LayerEntry escaping{Kind::kFile, "../escaped", "x"};
    if (first) {
      refused.insert(refused.begin(), escaping);
    } else {
      refused.push_back(escaping);
    }
    auto status = Unpack(refused).status();
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
    EXPECT_THAT(status.message(), HasSubstr("leaves the root"));
  }
}

TEST_F(UnpackTest, GarbageIsNotALayer) {
  std::string blob = dir_->Join("garbage");
  ASSERT_TRUE(base::WriteFileAtomically(blob, std::string(5000, '\x07')).ok());
  EXPECT_FALSE(UnpackLayer(blob, root_, WhiteoutStyle::kOverlay).ok());
}

// Both inflate engines (and libzstd) read the same layers to the same tar: the diff id and the
// files agree, whatever the compression.
TEST_F(UnpackTest, BothInflateEnginesGiveTheSameLayer) {
  auto rootfs = testing::BusyboxRootfs();
  ASSERT_TRUE(rootfs.ok());
  for (Compression compression : {Compression::kNone, Compression::kGzip, Compression::kZstd}) {
    auto layer = BuildLayer(*rootfs, compression);
    ASSERT_TRUE(layer.ok());
    std::string blob = dir_->Join("blob" + std::to_string(counter_++));
    ASSERT_TRUE(base::WriteFileAtomically(blob, layer->data).ok());
    auto diff_id = Digest::Parse(layer->diff_id);
    for (InflateEngine engine : {InflateEngine::kIsal, InflateEngine::kZlib}) {
      ASSERT_TRUE(base::RemoveTree(root_).ok());
      ASSERT_TRUE(base::MakeDirectories(root_, 0755).ok());
      auto unpacked = UnpackLayer(blob, root_, WhiteoutStyle::kOverlay, &*diff_id, engine);
      ASSERT_TRUE(unpacked.ok()) << unpacked.status();
      EXPECT_GT(Lstat("bin/busybox").st_size, 100000);
      EXPECT_EQ(unpacked->uncompressed_bytes,
                static_cast<int64_t>(BuildLayer(*rootfs, Compression::kNone)->data.size()));
      if (compression == Compression::kGzip) {
        EXPECT_EQ(unpacked->format,
                  engine == InflateEngine::kIsal ? "gzip (isa-l)" : "gzip (zlib)");
      } else {
        EXPECT_EQ(unpacked->format, compression == Compression::kZstd ? "zstd" : "tar");
      }
    }
  }
}

// gzip allows members in a row (pigz, concatenated files): all of them are the layer's tar.
TEST_F(UnpackTest, GzipMembersInARowAreOneStream) {
  auto first = BuildLayer({{Kind::kFile, "first", "one"}}, Compression::kGzip);
  auto second = BuildLayer({{Kind::kFile, "second", "two"}}, Compression::kGzip);
  auto first_tar = BuildLayer({{Kind::kFile, "first", "one"}}, Compression::kNone);
  auto second_tar = BuildLayer({{Kind::kFile, "second", "two"}}, Compression::kNone);
  ASSERT_TRUE(first.ok() && second.ok() && first_tar.ok() && second_tar.ok());
  std::string blob = dir_->Join("members");
  ASSERT_TRUE(base::WriteFileAtomically(blob, first->data + second->data).ok());
  Digest whole = Digest::Sha256Of(first_tar->data + second_tar->data);
  for (InflateEngine engine : {InflateEngine::kIsal, InflateEngine::kZlib}) {
    auto unpacked = UnpackLayer(blob, root_, WhiteoutStyle::kOverlay, &whole, engine);
    ASSERT_TRUE(unpacked.ok()) << unpacked.status();
    EXPECT_TRUE(Exists(root_ + "/first"));
  }
}

// A gzip layer whose bytes were damaged after it was made (the blob's own digest is checked
// when it is downloaded; this is the second line) is refused, never unpacked as if whole.
TEST_F(UnpackTest, DamagedGzipIsDataLossWithIsal) {
  auto rootfs = testing::BusyboxRootfs();
  ASSERT_TRUE(rootfs.ok());
  auto layer = BuildLayer(*rootfs, Compression::kGzip);
  ASSERT_TRUE(layer.ok());
  const std::string& data = layer->data;
  auto unpack_changed = [&](std::string changed) {
    std::string blob = dir_->Join("damaged" + std::to_string(counter_++));
    EXPECT_TRUE(base::WriteFileAtomically(blob, changed).ok());
    return UnpackLayer(blob, root_, WhiteoutStyle::kOverlay, nullptr, InflateEngine::kIsal)
        .status();
  };
  std::string crc = data;
  crc[crc.size() - 8] ^= 0x01;  // the trailer's CRC-32
  absl::Status status = unpack_changed(crc);
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss) << status;
  EXPECT_THAT(status.message(), HasSubstr("checksum"));
  std::string length = data;
  length[length.size() - 4] ^= 0x01;  // the trailer's length
  EXPECT_EQ(unpack_changed(length).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(unpack_changed(data.substr(0, data.size() - 6)).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(unpack_changed(data.substr(0, data.size() / 2)).code(), absl::StatusCode::kDataLoss);
  std::string middle = data;
  for (size_t i = data.size() / 2; i < data.size() / 2 + 64; ++i) middle[i] ^= 0x5a;
  EXPECT_FALSE(unpack_changed(middle).ok());
}

TEST_F(UnpackTest, CutZstdIsDataLoss) {
  auto layer = BuildLayer({{Kind::kFile, "a", std::string(100000, 'z')}}, Compression::kZstd);
  ASSERT_TRUE(layer.ok());
  std::string blob = dir_->Join("cut.zst");
  ASSERT_TRUE(base::WriteFileAtomically(blob, layer->data.substr(0, layer->data.size() - 3)).ok());
  EXPECT_EQ(UnpackLayer(blob, root_, WhiteoutStyle::kOverlay).status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace kapal::images
