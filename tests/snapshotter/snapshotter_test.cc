#include "snapshotter/snapshotter.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "snapshotter/mount.h"

namespace kapal::snapshotter {
namespace {

class SnapshotterTest : public ::testing::TestWithParam<Driver> {
 protected:
  void SetUp() override {
    auto dir = base::TempDir::Create("kapal-snap");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(*dir));
    auto store = store::Store::Open(dir_->Join("kapal.db"));
    ASSERT_TRUE(store.ok());
    store_ = std::move(*store);
    auto snapshotter = Snapshotter::Open(dir_->Join("root"), GetParam(), *store_);
    ASSERT_TRUE(snapshotter.ok());
    snapshotter_ = std::move(*snapshotter);
  }

  // Prepares KEY on PARENT, writes FILES into its content directory and commits it as NAME.
  void Layer(const std::string& name, const std::string& parent,
             const std::map<std::string, std::string>& files) {
    std::string key = "extract-" + name;
    ASSERT_TRUE(snapshotter_->Prepare(key, parent).ok());
    auto content = snapshotter_->ContentDirectory(key);
    ASSERT_TRUE(content.ok());
    for (const auto& [path, data] : files) {
      ASSERT_TRUE(base::WriteFileAtomically(*content + "/" + path, data).ok());
    }
    ASSERT_TRUE(snapshotter_->Commit(name, key).ok());
  }

  std::string Target(const std::string& name) {
    std::string target = dir_->Join("mnt-" + name);
    EXPECT_TRUE(base::MakeDirectories(target, 0755).ok());
    return target;
  }

  // Declared first so it is destroyed last, after every mount in a test is gone.
  std::optional<base::TempDir> dir_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Snapshotter> snapshotter_;
};

TEST_P(SnapshotterTest, ContainerRootSeesEveryLayerAndWritesStayItsOwn) {
  Layer("l1", "", {{"a", "from l1"}, {"shadowed", "old"}});
  Layer("l2", "l1", {{"b", "from l2"}, {"shadowed", "new"}});
  auto mounts = snapshotter_->Prepare("container", "l2");
  ASSERT_TRUE(mounts.ok()) << mounts.status();
  std::string target = Target("container");
  {
    auto mounted = ScopedMount::Create(*mounts, target);
    ASSERT_TRUE(mounted.ok()) << mounted.status();
    EXPECT_EQ(base::ReadFile(target + "/a").value_or(""), "from l1");
    EXPECT_EQ(base::ReadFile(target + "/b").value_or(""), "from l2");
    EXPECT_EQ(base::ReadFile(target + "/shadowed").value_or(""), "new");
    ASSERT_TRUE(base::WriteFileAtomically(target + "/written", "by the container").ok());
  }
  // The committed layers are untouched.
  auto l2 = snapshotter_->ContentDirectory("l2");
  struct stat st {};
  EXPECT_NE(::stat((*l2 + "/written").c_str(), &st), 0);
  auto own = snapshotter_->ContentDirectory("container");
  EXPECT_EQ(base::ReadFile(*own + "/written").value_or(""), "by the container");
}

// Cases that only the overlay driver has.
class OverlaySnapshotterTest : public SnapshotterTest {};

TEST_P(OverlaySnapshotterTest, LowerDirsAreNearestFirst) {
  Layer("l1", "", {});
  Layer("l2", "l1", {});
  auto mounts = snapshotter_->Prepare("c", "l2");
  ASSERT_TRUE(mounts.ok());
  ASSERT_EQ(mounts->size(), 1u);
  std::string lowerdir;
  for (const auto& option : (*mounts)[0].options) {
    if (option.rfind("lowerdir=", 0) == 0) lowerdir = option;
  }
  EXPECT_EQ(lowerdir, "lowerdir=" + *snapshotter_->ContentDirectory("l2") + ":" +
                          *snapshotter_->ContentDirectory("l1"));
}

TEST_P(OverlaySnapshotterTest, WhiteoutHidesALowerFile) {
  Layer("l1", "", {{"gone", "x"}, {"kept", "y"}});
  ASSERT_TRUE(snapshotter_->Prepare("extract-l2", "l1").ok());
  auto content = snapshotter_->ContentDirectory("extract-l2");
  ASSERT_EQ(::mknod((*content + "/gone").c_str(), S_IFCHR, makedev(0, 0)), 0);
  ASSERT_TRUE(snapshotter_->Commit("l2", "extract-l2").ok());
  auto mounts = snapshotter_->View("view", "l2");
  ASSERT_TRUE(mounts.ok());
  std::string target = Target("view");
  auto mounted = ScopedMount::Create(*mounts, target);
  ASSERT_TRUE(mounted.ok()) << mounted.status();
  struct stat st {};
  EXPECT_NE(::stat((target + "/gone").c_str(), &st), 0);
  EXPECT_EQ(::stat((target + "/kept").c_str(), &st), 0);
}

TEST_P(SnapshotterTest, ViewIsReadOnly) {
  Layer("l1", "", {{"a", "a"}});
  auto mounts = snapshotter_->View("v", "l1");
  ASSERT_TRUE(mounts.ok()) << mounts.status();
  std::string target = Target("v");
  auto mounted = ScopedMount::Create(*mounts, target);
  ASSERT_TRUE(mounted.ok()) << mounted.status();
  EXPECT_EQ(base::ReadFile(target + "/a").value_or(""), "a");
  absl::Status write = base::WriteFileAtomically(target + "/new", "x");
  EXPECT_FALSE(write.ok());
}

TEST_P(SnapshotterTest, ErrorsNameTheSnapshot) {
  Layer("l1", "", {});
  EXPECT_EQ(snapshotter_->Prepare("x", "missing").status().code(), absl::StatusCode::kNotFound);
  ASSERT_TRUE(snapshotter_->Prepare("active", "l1").ok());
  EXPECT_EQ(snapshotter_->Prepare("active", "l1").status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(snapshotter_->Prepare("y", "active").status().code(),
            absl::StatusCode::kFailedPrecondition)
      << "an active snapshot cannot be a parent";
  EXPECT_EQ(snapshotter_->Remove("l1").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(snapshotter_->Remove("never-existed").ok());
  ASSERT_TRUE(snapshotter_->Prepare("extract-again", "").ok());
  EXPECT_EQ(snapshotter_->Commit("l1", "extract-again").code(), absl::StatusCode::kAlreadyExists);
}

TEST_P(SnapshotterTest, RemoveDeletesTheTree) {
  Layer("l1", "", {{"a", "a"}});
  auto content = snapshotter_->ContentDirectory("l1");
  ASSERT_TRUE(snapshotter_->Remove("l1").ok());
  struct stat st {};
  EXPECT_NE(::stat(content->c_str(), &st), 0);
  EXPECT_EQ(snapshotter_->Stat("l1").status().code(), absl::StatusCode::kNotFound);
}

// The next snapshot may get the rowid, and so the directory name, of one just removed: a
// removal that has not finished deleting its files must never delete the new one's. Two
// threads prepare and remove containers on one image, bounded in count; every prepare must
// find its own directory whole.
TEST_P(SnapshotterTest, RemovalNeverDeletesTheSnapshotThatTookItsPlace) {
  Layer("image", "", {{"a", "from the image"}});
  std::atomic<int> failures{0};
  std::string first_failure;
  std::mutex failure_mutex;
  auto churn = [&](const std::string& name) {
    for (int i = 0; i < 150 && failures == 0; ++i) {
      std::string key = absl::StrCat(name, "-", i);
      absl::StatusOr<std::vector<Mount>> mounts = snapshotter_->Prepare(key, "image");
      absl::StatusOr<std::string> content = snapshotter_->ContentDirectory(key);
      struct stat st {};
      bool whole = mounts.ok() && content.ok() && ::stat(content->c_str(), &st) == 0;
      if (!whole) {
        std::lock_guard lock(failure_mutex);
        if (failures++ == 0) {
          first_failure = !mounts.ok()    ? mounts.status().ToString()
                          : !content.ok() ? content.status().ToString()
                                          : "content directory " + *content + " is gone";
        }
      }
      (void)snapshotter_->Remove(key);
    }
  };
  std::thread one(churn, "one");
  std::thread two(churn, "two");
  one.join();
  two.join();
  EXPECT_EQ(failures, 0) << first_failure;
}

TEST_P(SnapshotterTest, CommitRecordsTheUsageItsCallerMeasured) {
  ASSERT_TRUE(snapshotter_->Prepare("extract-l1", "").ok());
  auto dir = snapshotter_->ContentDirectory("extract-l1");
  ASSERT_TRUE(dir.ok());
  ASSERT_TRUE(base::WriteFileAtomically(*dir + "/file", "content").ok());
  // Numbers no walk of this tree gives: the commit recorded the caller's, not its own.
  ASSERT_TRUE(
      snapshotter_->Commit("l1", "extract-l1", Sync::kAtCommit, Usage{1 << 30, 12345}).ok());
  auto committed = snapshotter_->CommittedUsage();
  ASSERT_TRUE(committed.ok());
  EXPECT_EQ(committed->bytes, 1 << 30);
  EXPECT_EQ(committed->inodes, 12345);
}

TEST_P(SnapshotterTest, UsageCountsBytesAndInodes) {
  Layer("l1", "", {{"big", std::string(100000, 'x')}});
  auto usage = snapshotter_->GetUsage("l1");
  ASSERT_TRUE(usage.ok());
  EXPECT_GE(usage->bytes, 100000);
  EXPECT_EQ(usage->inodes, 2) << "the directory and the file";
  // What was measured at commit is what the totals report, without walking the disk again.
  auto committed = snapshotter_->CommittedUsage();
  ASSERT_TRUE(committed.ok());
  EXPECT_EQ(committed->bytes, usage->bytes);
  EXPECT_EQ(committed->inodes, usage->inodes);
  ASSERT_TRUE(snapshotter_->Prepare("active", "l1").ok());
  EXPECT_EQ(snapshotter_->CommittedUsage()->bytes, usage->bytes)
      << "active snapshots are not images";
}

TEST_P(SnapshotterTest, CleanUpRemovesInterruptedUnpacksAndOrphans) {
  Layer("l1", "", {});
  ASSERT_TRUE(snapshotter_->Prepare("extract-interrupted", "l1").ok());
  ASSERT_TRUE(snapshotter_->Prepare("container-keep", "l1").ok());
  std::string orphan = snapshotter_->Root() + "/snapshots/999";
  ASSERT_TRUE(base::MakeDirectories(orphan + "/fs", 0755).ok());
  ASSERT_TRUE(snapshotter_->CleanUp("extract-").ok());
  EXPECT_EQ(snapshotter_->Stat("extract-interrupted").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(snapshotter_->Stat("container-keep").ok());
  EXPECT_TRUE(snapshotter_->Stat("l1").ok());
  struct stat st {};
  EXPECT_NE(::stat(orphan.c_str(), &st), 0);
  EXPECT_EQ(snapshotter_->Walk().size(), 2u);
}

TEST_P(SnapshotterTest, StagedContentIsAdoptedWithTheParentsRootModeAndLeftoversGo) {
  Layer("l1", "", {});
  std::string l1_fs = *snapshotter_->ContentDirectory("l1");
  ASSERT_EQ(::chmod(l1_fs.c_str(), 0750), 0);
  absl::StatusOr<std::string> staged = snapshotter_->NewStagingDirectory();
  ASSERT_TRUE(staged.ok()) << staged.status();
  ASSERT_TRUE(base::WriteFileAtomically(*staged + "/staged-file", "from staging", 0644,
                                        base::Durability::kVolatile)
                  .ok());
  ASSERT_TRUE(snapshotter_->Prepare("extract-l2", "l1").ok());
  ASSERT_TRUE(snapshotter_->Adopt("extract-l2", *staged).ok());
  std::string l2_fs = *snapshotter_->ContentDirectory("extract-l2");
  EXPECT_EQ(*base::ReadFile(l2_fs + "/staged-file"), "from staging");
  struct stat root {};
  ASSERT_EQ(::stat(l2_fs.c_str(), &root), 0);
  EXPECT_EQ(root.st_mode & 07777, 0750u) << "the parent's root mode, as Prepare gives it";
  // A staging directory a crash left behind goes at clean-up.
  absl::StatusOr<std::string> left = snapshotter_->NewStagingDirectory();
  ASSERT_TRUE(left.ok());
  ASSERT_TRUE(snapshotter_->CleanUp("nothing-").ok());
  struct stat gone {};
  EXPECT_NE(::stat(left->c_str(), &gone), 0);
}

INSTANTIATE_TEST_SUITE_P(Drivers, SnapshotterTest,
                         ::testing::Values(Driver::kOverlay, Driver::kNative),
                         [](const ::testing::TestParamInfo<Driver>& param_info) {
                           return param_info.param == Driver::kOverlay ? "Overlay" : "Native";
                         });

TEST_P(OverlaySnapshotterTest, ImageWithManyLayersMountsDespiteTheOptionLimit) {
  // 150 layers: their absolute paths in lowerdir take far more than the page mount(2) copies.
  std::string parent;
  for (int i = 0; i < 150; ++i) {
    std::string name = "layer" + std::to_string(i);
    Layer(name, parent, {{"file" + std::to_string(i), name}});
    parent = name;
  }
  auto mounts = snapshotter_->Prepare("container", parent);
  ASSERT_TRUE(mounts.ok());
  size_t options = 0;
  for (const auto& option : (*mounts)[0].options) options += option.size() + 1;
  ASSERT_GT(options, 4096u);
  std::string target = Target("many");
  auto mounted = ScopedMount::Create(*mounts, target);
  ASSERT_TRUE(mounted.ok()) << mounted.status();
  EXPECT_EQ(base::ReadFile(target + "/file0").value_or(""), "layer0");
  EXPECT_EQ(base::ReadFile(target + "/file149").value_or(""), "layer149");
  ASSERT_TRUE(base::WriteFileAtomically(target + "/written", "x").ok());
}

INSTANTIATE_TEST_SUITE_P(Drivers, OverlaySnapshotterTest, ::testing::Values(Driver::kOverlay),
                         [](const ::testing::TestParamInfo<Driver>&) { return "Overlay"; });

// A machine's boot as the snapshotter tells it: tests name their own.
class DeferredSyncTest : public SnapshotterTest {
 protected:
  void SetUp() override {
    SnapshotterTest::SetUp();
    Boot("boot-1");
  }
  void Boot(const std::string& boot_id, std::chrono::milliseconds delay = std::chrono::seconds(10),
            std::chrono::milliseconds max_hold = std::chrono::seconds(60)) {
    snapshotter_.reset();
    auto snapshotter =
        Snapshotter::Open(dir_->Join("root"), GetParam(), *store_, "",
                          {.boot_id = boot_id, .delay = delay, .max_hold = max_hold});
    ASSERT_TRUE(snapshotter.ok()) << snapshotter.status();
    snapshotter_ = std::move(*snapshotter);
  }
  void CommitLayer(const std::string& name, const std::string& parent, const std::string& file,
                   Sync sync) {
    std::string key = "extract-" + name;
    ASSERT_TRUE(snapshotter_->Prepare(key, parent).ok());
    auto content = snapshotter_->ContentDirectory(key);
    ASSERT_TRUE(content.ok());
    ASSERT_TRUE(base::WriteFileAtomically(*content + "/" + file, "from " + name).ok());
    ASSERT_TRUE(snapshotter_->Commit(name, key, sync).ok());
  }
  // this boot's, earlier boots'
  using Counted = std::pair<int64_t, int64_t>;
  Counted Counts() {
    absl::StatusOr<UnsyncedCounts> counts = snapshotter_->CountUnsynced();
    EXPECT_TRUE(counts.ok()) << counts.status();
    if (!counts.ok()) return {-1, -1};
    return {counts->this_boot, counts->earlier_boot};
  }
  std::vector<std::string> UnsyncedKeys() {
    std::vector<std::string> keys;
    for (const Info& info : snapshotter_->UnsyncedFromEarlierBoots()) keys.push_back(info.key);
    return keys;
  }
};

TEST_P(DeferredSyncTest, ADeferredCommitWaitsForItsSyncAndOnlyOverlayDefers) {
  CommitLayer("synced", "", "a", Sync::kAtCommit);
  CommitLayer("deferred", "synced", "b", Sync::kDeferred);
  EXPECT_FALSE(snapshotter_->Unsynced("synced").value_or(true));
  // The native driver's trees hold their parents' files too: only overlay can unpack a layer
  // again on its own, so only overlay defers.
  EXPECT_EQ(snapshotter_->Unsynced("deferred").value_or(false), GetParam() == Driver::kOverlay);
  EXPECT_EQ(Counts(), Counted(GetParam() == Driver::kOverlay ? 1 : 0, 0));
  ASSERT_TRUE(snapshotter_->SyncDeferred().ok());
  EXPECT_FALSE(snapshotter_->Unsynced("deferred").value_or(true));
  EXPECT_EQ(Counts(), Counted(0, 0));
  EXPECT_EQ(snapshotter_->Unsynced("absent").status().code(), absl::StatusCode::kNotFound);
}

// Only overlay defers.
using OverlayDeferredSyncTest = DeferredSyncTest;

TEST_P(OverlayDeferredSyncTest, AnotherBootListsWhatWasNotSyncedAndTheSameBootSyncsIt) {
  CommitLayer("base", "", "a", Sync::kDeferred);
  CommitLayer("top", "base", "b", Sync::kDeferred);
  EXPECT_EQ(Counts(), Counted(2, 0));
  // kapald stops without its sync (killed): a new kapald in the same boot syncs them, since
  // the page cache still has their files.
  Boot("boot-1");
  EXPECT_THAT(UnsyncedKeys(), ::testing::IsEmpty());
  ASSERT_TRUE(snapshotter_->SyncDeferred().ok());
  EXPECT_FALSE(snapshotter_->Unsynced("base").value_or(true));
  EXPECT_FALSE(snapshotter_->Unsynced("top").value_or(true));

  // The machine went down before the sync: the next boot names the layer, nothing else.
  CommitLayer("later", "top", "c", Sync::kDeferred);
  Boot("boot-2");
  EXPECT_THAT(UnsyncedKeys(), ::testing::ElementsAre("later"));
  // Its sync of this boot does not vouch for files an earlier boot may have lost.
  ASSERT_TRUE(snapshotter_->SyncDeferred().ok());
  EXPECT_THAT(UnsyncedKeys(), ::testing::ElementsAre("later"));
  EXPECT_EQ(Counts(), Counted(0, 1));
}

TEST_P(OverlayDeferredSyncTest, ASnapshotOfTheSameNameLaterIsNotMarkedByAnEarlierSync) {
  CommitLayer("layer", "", "a", Sync::kDeferred);
  ASSERT_TRUE(snapshotter_->Remove("layer").ok());
  CommitLayer("layer", "", "a", Sync::kDeferred);
  ASSERT_TRUE(snapshotter_->SyncDeferred().ok());
  EXPECT_FALSE(snapshotter_->Unsynced("layer").value_or(true));
}

TEST_P(OverlayDeferredSyncTest, ReplaceTreePutsTheRebuiltTreeInPlaceWithTheRootsModeAndSyncsIt) {
  CommitLayer("base", "", "kept", Sync::kDeferred);
  CommitLayer("top", "base", "file", Sync::kDeferred);
  Boot("boot-2");
  auto tree = snapshotter_->ContentDirectory("top");
  ASSERT_TRUE(tree.ok());
  ASSERT_EQ(::chmod(tree->c_str(), 0751), 0);
  ASSERT_TRUE(base::WriteFileAtomically(*tree + "/file", "half").ok());  // what a crash left

  auto staged = snapshotter_->NewStagingDirectory();
  ASSERT_TRUE(staged.ok());
  ASSERT_TRUE(base::WriteFileAtomically(*staged + "/file", "from top").ok());
  ASSERT_TRUE(snapshotter_->ReplaceTree("top", *staged).ok());
  EXPECT_EQ(base::ReadFile(*tree + "/file").value_or(""), "from top");
  struct stat st {};
  ASSERT_EQ(::stat(tree->c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0751u);
  EXPECT_NE(::stat(staged->c_str(), &st), 0) << "the old tree is removed";
  EXPECT_THAT(UnsyncedKeys(), ::testing::ElementsAre("base"));
  EXPECT_EQ(snapshotter_->ReplaceTree("absent", *staged).code(), absl::StatusCode::kNotFound);

  // The crash lost the tree's directory entry altogether: the rebuilt tree takes its place.
  auto base_tree = snapshotter_->ContentDirectory("base");
  ASSERT_TRUE(base_tree.ok());
  ASSERT_TRUE(base::RemoveTree(*base_tree).ok());
  auto rebuilt = snapshotter_->NewStagingDirectory();
  ASSERT_TRUE(rebuilt.ok());
  ASSERT_TRUE(base::WriteFileAtomically(*rebuilt + "/kept", "from base").ok());
  ASSERT_TRUE(snapshotter_->ReplaceTree("base", *rebuilt).ok());
  EXPECT_EQ(base::ReadFile(*base_tree + "/kept").value_or(""), "from base");
  EXPECT_THAT(UnsyncedKeys(), ::testing::IsEmpty());
}

TEST_P(OverlayDeferredSyncTest, TheBackgroundSyncFollowsTheDelayOnceNoPullHoldsItOff) {
  Boot("boot-1", std::chrono::milliseconds(50), std::chrono::seconds(60));
  auto synced_within_5s = [&](const std::string& key) {
    for (int i = 0; i < 100 && snapshotter_->Unsynced(key).value_or(true); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return !snapshotter_->Unsynced(key).value_or(true);
  };
  {
    Snapshotter::SyncHold pulling(*snapshotter_);
    CommitLayer("held", "", "a", Sync::kDeferred);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_TRUE(snapshotter_->Unsynced("held").value_or(false)) << "synced during the pull";
  }
  EXPECT_TRUE(synced_within_5s("held"));
  CommitLayer("free", "held", "b", Sync::kDeferred);
  EXPECT_TRUE(synced_within_5s("free"));
}

TEST_P(OverlayDeferredSyncTest, AHoldPutsTheBackgroundSyncOffAtMostMaxHold) {
  Boot("boot-1", std::chrono::milliseconds(50), std::chrono::milliseconds(200));
  Snapshotter::SyncHold pulling(*snapshotter_);
  CommitLayer("held", "", "a", Sync::kDeferred);
  for (int i = 0; i < 100 && snapshotter_->Unsynced("held").value_or(true); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_FALSE(snapshotter_->Unsynced("held").value_or(true));
}

INSTANTIATE_TEST_SUITE_P(Drivers, DeferredSyncTest,
                         ::testing::Values(Driver::kOverlay, Driver::kNative),
                         [](const ::testing::TestParamInfo<Driver>& param_info) {
                           return param_info.param == Driver::kOverlay ? "Overlay" : "Native";
                         });
INSTANTIATE_TEST_SUITE_P(Drivers, OverlayDeferredSyncTest, ::testing::Values(Driver::kOverlay),
                         [](const ::testing::TestParamInfo<Driver>&) { return "Overlay"; });

TEST(OverlayTest, SupportedOnThisHost) {
  auto dir = base::TempDir::Create("kapal-overlay");
  ASSERT_TRUE(dir.ok());
  EXPECT_TRUE(OverlaySupported(dir->Path()));
}

}  // namespace
}  // namespace kapal::snapshotter
