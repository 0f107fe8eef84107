// Pulls from a real registry into the content store and real overlay snapshots.
#include "images/puller.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <httplib.h>
#include <sys/stat.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "base/files.h"
#include "base/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "images/garbage.h"
#include "images/pusher.h"
#include "snapshotter/mount.h"
#include "tests/fixtures/image_stack.h"
#include "tests/fixtures/loopback_server.h"
#include "tests/fixtures/registry_fixture.h"

namespace kapal::images {
namespace {

using testing::BuildLayer;
using testing::Compression;
using ::testing::HasSubstr;
using testing::LayerEntry;
using testing::RegistryFixture;
using testing::TestImage;
using Kind = testing::LayerEntry::Kind;

class PullTest : public ::testing::TestWithParam<snapshotter::Driver> {
 protected:
  void SetUp() override {
    auto registry = RegistryFixture::Start();
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = std::move(*registry);
    auto stack = testing::ImageStack::Create(GetParam());
    ASSERT_TRUE(stack.ok()) << stack.status();
    stack_ = std::move(*stack);
    dir_ = &*stack_->dir;
    content_ = stack_->content.get();
    snapshots_ = stack_->snapshots.get();
    images_ = stack_->images.get();
    puller_ = std::make_unique<Puller>(*content_, *snapshots_, *images_, PullOptions{});
  }

  TestImage Busybox(Compression compression = Compression::kGzip) {
    auto rootfs = testing::BusyboxRootfs();
    EXPECT_TRUE(rootfs.ok());
    auto layer = BuildLayer(*rootfs, compression);
    EXPECT_TRUE(layer.ok());
    TestImage image;
    image.layers.push_back(*layer);
    return image;
  }

  std::string Ref(const std::string& repository_and_tag) {
    return registry_->Host() + "/" + repository_and_tag;
  }

  // Mounts a read-only view of the image's root filesystem and runs CHECK on its path.
  void InRootfs(const ImageRecord& image, const std::function<void(const std::string&)>& check) {
    std::string key = "view-" + image.id.Short() + std::to_string(views_++);
    auto mounts = snapshots_->View(key, image.top_chain_id.String());
    ASSERT_TRUE(mounts.ok()) << mounts.status();
    std::string target = dir_->Join(key);
    ASSERT_TRUE(base::MakeDirectories(target, 0755).ok());
    {
      auto mounted = snapshotter::ScopedMount::Create(*mounts, target);
      ASSERT_TRUE(mounted.ok()) << mounted.status();
      check(target);
    }
    ASSERT_TRUE(snapshots_->Remove(key).ok());
  }

  int CommittedSnapshots() {
    int count = 0;
    for (const auto& info : snapshots_->Walk()) count += info.kind == snapshotter::Kind::kCommitted;
    return count;
  }

  std::unique_ptr<RegistryFixture> registry_;
  std::unique_ptr<testing::ImageStack> stack_;
  base::TempDir* dir_ = nullptr;
  ContentStore* content_ = nullptr;
  snapshotter::Snapshotter* snapshots_ = nullptr;
  ImageStore* images_ = nullptr;
  std::unique_ptr<Puller> puller_;
  int views_ = 0;
};

// In front of a real registry: passes manifests through, but sends only the first KiB of every
// blob and then nothing (for at most 30 s): the registry of a pull that stops making progress.
class StallingRegistry {
 public:
  explicit StallingRegistry(std::string upstream) : upstream_(std::move(upstream)) {
    server_.Get(R"(/v2/.*)", [this](const httplib::Request& request, httplib::Response& response) {
      httplib::Client client("http://" + upstream_);
      httplib::Headers headers;
      if (request.has_header("Accept"))
        headers.emplace("Accept", request.get_header_value("Accept"));
      httplib::Result got = client.Get(request.path, headers);
      if (!got) {
        response.status = 502;
        return;
      }
      response.status = got->status;
      for (const char* name : {"Content-Type", "Docker-Content-Digest"}) {
        if (got->has_header(name)) response.set_header(name, got->get_header_value(name));
      }
      if (request.path.find("/blobs/") == std::string::npos || got->status != 200) {
        response.body = got->body;
        return;
      }
      std::string body = got->body;
      response.set_content_provider(
          body.size(), "application/octet-stream",
          [this, body](size_t offset, size_t, httplib::DataSink& sink) {
            if (offset == 0) {
              sink.write(body.data(), std::min<size_t>(1024, body.size()));
              return true;
            }
            std::unique_lock lock(mutex_);
            stalled_.wait_for(lock, std::chrono::seconds(30), [this] { return stopping_; });
            return false;
          });
    });
    port_ = testing::ServeOnLoopback(server_, thread_);
  }
  ~StallingRegistry() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    stalled_.notify_all();
    server_.stop();
    thread_.join();
  }
  std::string Host() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  std::string upstream_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mutex_;
  std::condition_variable stalled_;
  bool stopping_ = false;
};

// In front of a real registry: forwards every GET and counts the blob requests per digest.
// With SERVE_RANGES it answers a Range request with that range (206), else with the whole blob
// (200), as a registry without range support does.
class CountingRegistry {
 public:
  CountingRegistry(std::string upstream, bool serve_ranges)
      : upstream_(std::move(upstream)), serve_ranges_(serve_ranges) {
    server_.Get(R"(/v2/.*)", [this](const httplib::Request& request, httplib::Response& response) {
      httplib::Client client("http://" + upstream_);
      httplib::Headers headers;
      if (request.has_header("Accept")) {
        headers.emplace("Accept", request.get_header_value("Accept"));
      }
      size_t blobs = request.path.find("/blobs/");
      if (blobs != std::string::npos) {
        std::lock_guard lock(mutex_);
        ++blob_requests_[request.path.substr(blobs + 7)];
        if (request.has_header("Range")) ++range_requests_;
      }
      httplib::Result got = client.Get(request.path, headers);
      if (!got) {
        response.status = 502;
        return;
      }
      for (const char* name : {"Content-Type", "Docker-Content-Digest"}) {
        if (got->has_header(name)) response.set_header(name, got->get_header_value(name));
      }
      std::string body = got->body;
      std::string type = got->get_header_value("Content-Type");
      if (got->status != 200 || serve_ranges_) {
        // httplib cuts the requested range out of a body of known length itself (206).
        response.set_content(body, type);
        if (got->status != 200) response.status = got->status;
        return;
      }
      // A body of unknown length (chunked) is sent whole whatever was asked: no ranges.
      response.status = 200;
      response.set_chunked_content_provider(type, [body](size_t offset, httplib::DataSink& sink) {
        if (offset < body.size()) {
          sink.write(body.data() + offset, body.size() - offset);
        } else {
          sink.done();
        }
        return true;
      });
    });
    port_ = testing::ServeOnLoopback(server_, thread_);
  }
  ~CountingRegistry() {
    server_.stop();
    thread_.join();
  }
  std::string Host() const { return "127.0.0.1:" + std::to_string(port_); }
  int BlobRequests(const std::string& digest) {
    std::lock_guard lock(mutex_);
    return blob_requests_[digest];
  }
  int RangeRequests() {
    std::lock_guard lock(mutex_);
    return range_requests_;
  }

 private:
  std::string upstream_;
  bool serve_ranges_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::mutex mutex_;
  std::map<std::string, int> blob_requests_;
  int range_requests_ = 0;
};

bool Exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

TEST_P(PullTest, SingleLayerBusybox) {
  TestImage image = Busybox();
  auto manifest_digest = registry_->Push("kapal/busybox", "1.0", image);
  ASSERT_TRUE(manifest_digest.ok());
  std::vector<LayerProgress> reports;
  auto pulled = puller_->Pull(Ref("kapal/busybox:1.0"), {},
                              [&](const LayerProgress& progress) { reports.push_back(progress); });
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(pulled->id, Digest::Sha256Of(image.ConfigJson()));
  EXPECT_THAT(pulled->repo_tags, ::testing::ElementsAre(Ref("kapal/busybox:1.0")));
  EXPECT_THAT(pulled->repo_digests,
              ::testing::ElementsAre(Ref("kapal/busybox@") + *manifest_digest));
  EXPECT_GT(pulled->size, static_cast<int64_t>(image.layers[0].data.size()));
  ASSERT_FALSE(reports.empty());
  EXPECT_EQ(reports.back().done, static_cast<int64_t>(image.layers[0].data.size()));
  InRootfs(*pulled, [](const std::string& root) {
    struct stat st {};
    ASSERT_EQ(::stat((root + "/bin/busybox").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0755u);
    EXPECT_TRUE(Exists(root + "/bin/sh"));
  });
  // Found by every form of reference.
  EXPECT_TRUE(images_->Find(Ref("kapal/busybox:1.0")).ok());
  EXPECT_TRUE(images_->Find(Ref("kapal/busybox@") + *manifest_digest).ok());
  EXPECT_TRUE(images_->Find(pulled->id.String()).ok());
  EXPECT_TRUE(images_->Find(pulled->id.Hex().substr(0, 12)).ok());
  // The image's manifest and config are in the content store with it.
  EXPECT_TRUE(content_->Has(pulled->id));
  EXPECT_TRUE(content_->Has(*Digest::Parse(*manifest_digest)));
}

TEST_P(PullTest, LayersWithDeletionsAndOpaqueDirectories) {
  TestImage image = Busybox();
  auto second = BuildLayer({{Kind::kDirectory, "etc", "", 0755},
                            {Kind::kFile, "etc/.wh.group", ""},
                            {Kind::kDirectory, "data", "", 0755},
                            {Kind::kFile, "data/new", "second"}},
                           Compression::kGzip);
  auto third = BuildLayer({{Kind::kDirectory, "data", "", 0755},
                           {Kind::kFile, "data/.wh..wh..opq", ""},
                           {Kind::kFile, "data/newest", "third"}},
                          Compression::kGzip);
  ASSERT_TRUE(second.ok() && third.ok());
  image.layers.push_back(*second);
  image.layers.push_back(*third);
  ASSERT_TRUE(registry_->Push("kapal/layers", "v1", image).ok());
  auto pulled = puller_->Pull(Ref("kapal/layers:v1"), {});
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(CommittedSnapshots(), 3);
  // What the commits recorded (with overlay measured in staging, before the commit) is what the
  // committed trees take: the same inodes, and the same blocks but for a few that the disk's
  // writeback may have added meanwhile (a file's extent tree).
  base::TreeUsage walked;
  for (const auto& info : snapshots_->Walk()) {
    if (info.kind != snapshotter::Kind::kCommitted) continue;
    base::TreeUsage layer = base::MeasureTree(info.directory + "/fs");
    walked.bytes += layer.bytes;
    walked.inodes += layer.inodes;
  }
  auto recorded = snapshots_->CommittedUsage();
  ASSERT_TRUE(recorded.ok()) << recorded.status();
  EXPECT_EQ(recorded->inodes, walked.inodes);
  EXPECT_GT(recorded->bytes, 1 << 20) << "busybox is in the first layer";
  EXPECT_NEAR(static_cast<double>(recorded->bytes), static_cast<double>(walked.bytes), 65536);
  InRootfs(*pulled, [](const std::string& root) {
    EXPECT_TRUE(Exists(root + "/etc/passwd"));
    EXPECT_FALSE(Exists(root + "/etc/group")) << "deleted by the second layer";
    EXPECT_FALSE(Exists(root + "/data/new")) << "hidden by the third layer's opaque directory";
    EXPECT_EQ(base::ReadFile(root + "/data/newest").value_or(""), "third");
  });
}

// Layers whose sync the pull did not wait for (overlay: the native driver syncs at commit).
class OverlayPullTest : public PullTest {
 protected:
  // The machine went down: the snapshotter and the puller start again, in another boot.
  void StartInTheNextBoot() {
    puller_.reset();
    stack_->snapshots.reset();
    auto rebooted =
        snapshotter::Snapshotter::Open(dir_->Join("snap"), snapshotter::Driver::kOverlay,
                                       *stack_->store, "", {.boot_id = "the-next-boot"});
    ASSERT_TRUE(rebooted.ok()) << rebooted.status();
    stack_->snapshots = std::move(*rebooted);
    snapshots_ = stack_->snapshots.get();
    puller_ = std::make_unique<Puller>(*content_, *snapshots_, *images_, PullOptions{});
  }
};

TEST_P(OverlayPullTest, LayersNotSyncedWhenTheMachineWentDownAreUnpackedAgainFromTheirBlobs) {
  TestImage image = Busybox();
  auto second = BuildLayer({{Kind::kDirectory, "data", "", 0755},
                            {Kind::kFile, "data/new", "second"},
                            {Kind::kDirectory, "etc", "", 0755},
                            {Kind::kFile, "etc/.wh.group", ""}},
                           Compression::kGzip);
  ASSERT_TRUE(second.ok());
  image.layers.push_back(*second);
  ASSERT_TRUE(registry_->Push("kapal/unsynced", "v1", image).ok());
  auto pulled = puller_->Pull(Ref("kapal/unsynced:v1"), {});
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  std::string top = pulled->top_chain_id.String();
  auto top_info = snapshots_->Stat(top);
  ASSERT_TRUE(top_info.ok());
  std::string base = top_info->parent;
  // The pull did not wait for the layers' files; the background sync has not come yet.
  EXPECT_TRUE(snapshots_->Unsynced(base).value_or(false));
  EXPECT_TRUE(snapshots_->Unsynced(top).value_or(false));

  // The machine goes down before that sync and comes up with another boot id; the files it
  // had not written are gone or half written.
  ASSERT_NO_FATAL_FAILURE(StartInTheNextBoot());
  auto base_tree = snapshots_->ContentDirectory(base);
  auto top_tree = snapshots_->ContentDirectory(top);
  ASSERT_TRUE(base_tree.ok() && top_tree.ok());
  ASSERT_EQ(::truncate((*base_tree + "/bin/busybox").c_str(), 100), 0);
  ASSERT_EQ(::unlink((*top_tree + "/data/new").c_str()), 0);

  Puller::Rebuilt rebuilt = puller_->RebuildUnsyncedLayers();
  EXPECT_EQ(rebuilt.layers, 2);
  EXPECT_THAT(rebuilt.failures, ::testing::IsEmpty());
  EXPECT_FALSE(snapshots_->Unsynced(base).value_or(true));
  EXPECT_FALSE(snapshots_->Unsynced(top).value_or(true));
  InRootfs(*pulled, [&](const std::string& root) {
    struct stat st {};
    ASSERT_EQ(::stat((root + "/bin/busybox").c_str(), &st), 0);
    struct stat original {};
    ASSERT_EQ(::stat("/bin/busybox", &original), 0);
    EXPECT_EQ(st.st_size, original.st_size);
    EXPECT_EQ(st.st_mode & 0777, 0755u);
    EXPECT_EQ(base::ReadFile(root + "/data/new").value_or(""), "second");
    EXPECT_FALSE(Exists(root + "/etc/group")) << "the whiteout is made again too";
  });
  // Nothing left to do at the next start.
  EXPECT_EQ(puller_->RebuildUnsyncedLayers().layers, 0);
}

TEST_P(OverlayPullTest, ALayerWhoseBlobIsGoneCannotBeUnpackedAgainAndIsNamed) {
  TestImage image = Busybox();
  ASSERT_TRUE(registry_->Push("kapal/unsynced", "v1", image).ok());
  auto pulled = puller_->Pull(Ref("kapal/unsynced:v1"), {});
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  ASSERT_TRUE(content_->Remove(*Digest::Parse(image.layers[0].digest)).ok());
  ASSERT_NO_FATAL_FAILURE(StartInTheNextBoot());
  Puller::Rebuilt rebuilt = puller_->RebuildUnsyncedLayers();
  EXPECT_EQ(rebuilt.layers, 0);
  ASSERT_EQ(rebuilt.failures.size(), 1u);
  EXPECT_THAT(rebuilt.failures[0], HasSubstr(pulled->top_chain_id.String()));
  EXPECT_THAT(rebuilt.failures[0], HasSubstr("pull them again"));
  // Still named at the next start: nothing vouches for its files.
  EXPECT_TRUE(snapshots_->Unsynced(pulled->top_chain_id.String()).value_or(false));
}

TEST_P(PullTest, LayersSyncedAtCommitWhenConfigured) {
  PullOptions options;
  options.layer_sync = snapshotter::Sync::kAtCommit;
  // Background syncs while the layers unpack (overlay), many of them for busybox's layer.
  options.sync_behind_bytes = 64 * 1024;
  puller_ = std::make_unique<Puller>(*content_, *snapshots_, *images_, options);
  ASSERT_TRUE(registry_->Push("kapal/synced", "v1", Busybox()).ok());
  auto pulled = puller_->Pull(Ref("kapal/synced:v1"), {});
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_FALSE(snapshots_->Unsynced(pulled->top_chain_id.String()).value_or(true));
  InRootfs(*pulled, [](const std::string& root) { EXPECT_TRUE(Exists(root + "/bin/busybox")); });
}

TEST_P(PullTest, MultiPlatformIndexPicksThisNode) {
  std::vector<TestImage> images = {Busybox(), Busybox()};
  images[0].architecture = HostPlatform().architecture;
  images[1].architecture = HostPlatform().architecture == "arm64" ? "amd64" : "arm64";
  images[1].cmd = {"other-platform"};
  auto index_digest = registry_->PushIndex("kapal/multi", "latest", images);
  ASSERT_TRUE(index_digest.ok()) << index_digest.status();
  auto pulled = puller_->Pull(Ref("kapal/multi"), {});
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(pulled->id, Digest::Sha256Of(images[0].ConfigJson()));
  EXPECT_THAT(pulled->repo_digests, ::testing::ElementsAre(Ref("kapal/multi@") + *index_digest));
  EXPECT_THAT(pulled->repo_tags, ::testing::ElementsAre(Ref("kapal/multi:latest")));
}

TEST_P(PullTest, ZstdLayers) {
  ASSERT_TRUE(registry_->Push("kapal/zstd", "1", Busybox(Compression::kZstd)).ok());
  auto pulled = puller_->Pull(Ref("kapal/zstd:1"), {});
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  InRootfs(*pulled, [](const std::string& root) { EXPECT_TRUE(Exists(root + "/bin/busybox")); });
}

TEST_P(PullTest, CorruptBlobFailsAndKeepsNothing) {
  TestImage image = Busybox();
  ASSERT_TRUE(registry_->Push("kapal/corrupt", "1", image).ok());
  std::string corrupt = image.layers[0].data;
  corrupt[corrupt.size() / 3] ^= 0x21;
  ASSERT_TRUE(
      base::WriteFileAtomically(registry_->BlobDataPath(image.layers[0].digest), corrupt).ok());
  auto pulled = puller_->Pull(Ref("kapal/corrupt:1"), {});
  ASSERT_FALSE(pulled.ok());
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr(image.layers[0].digest));
  EXPECT_FALSE(content_->Has(*Digest::Parse(image.layers[0].digest)));
  EXPECT_TRUE(images_->List().empty());
  EXPECT_EQ(CommittedSnapshots(), 0);
}

// The config is read before any layer starts (its diff ids name the layers' snapshots): one
// that does not match its digest ends the pull with DATA_LOSS before a layer is fetched, and
// neither it nor an image is kept.
TEST_P(PullTest, CorruptConfigFailsAndKeepsNothing) {
  TestImage image = Busybox();
  ASSERT_TRUE(registry_->Push("kapal/corrupt-config", "1", image).ok());
  std::string config = image.ConfigJson();
  Digest config_digest = Digest::Sha256Of(config);
  config[config.size() / 2] ^= 0x01;
  ASSERT_TRUE(
      base::WriteFileAtomically(registry_->BlobDataPath(config_digest.String()), config).ok());
  auto pulled = puller_->Pull(Ref("kapal/corrupt-config:1"), {});
  ASSERT_FALSE(pulled.ok());
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kDataLoss) << pulled.status();
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("config"));
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("digest mismatch"));
  EXPECT_FALSE(content_->Has(config_digest));
  EXPECT_FALSE(content_->Has(*Digest::Parse(image.layers[0].digest)));
  EXPECT_TRUE(images_->List().empty());
  EXPECT_EQ(CommittedSnapshots(), 0);
}

// A pull whose download stops moving is cancelled after the progress timeout, with
// DEADLINE_EXCEEDED (not retried as a network fault), and keeps nothing: no blob, no partial
// download, no snapshot, no image.
TEST_P(PullTest, StalledDownloadEndsAfterTheProgressTimeoutAndKeepsNothing) {
  TestImage image = Busybox();
  ASSERT_TRUE(registry_->Push("kapal/stalled", "1", image).ok());
  StallingRegistry stalling(registry_->Host());
  PullOptions options;
  options.progress_timeout = std::chrono::seconds(2);
  Puller puller(*content_, *snapshots_, *images_, options);
  auto pulled = puller.Pull(stalling.Host() + "/kapal/stalled:1", {});
  ASSERT_FALSE(pulled.ok());
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kDeadlineExceeded) << pulled.status();
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("no progress for 2 s"));
  EXPECT_FALSE(content_->Has(*Digest::Parse(image.layers[0].digest)));
  EXPECT_TRUE(images_->List().empty());
  EXPECT_EQ(CommittedSnapshots(), 0);
  // No partial download left behind in the content store's ingest area either.
  auto ingest = base::ListDirectory(content_->Root() + "/ingest");
  ASSERT_TRUE(ingest.ok()) << ingest.status();
  EXPECT_TRUE(ingest->empty()) << (*ingest)[0];
}

TEST_P(PullTest, EscapingLayerFailsAndCommitsNothing) {
  TestImage image = Busybox();
  auto evil = BuildLayer({{Kind::kFile, "../../escaped", "x"}}, Compression::kGzip);
  ASSERT_TRUE(evil.ok());
  image.layers.push_back(*evil);
  ASSERT_TRUE(registry_->Push("kapal/evil", "1", image).ok());
  auto pulled = puller_->Pull(Ref("kapal/evil:1"), {});
  ASSERT_FALSE(pulled.ok());
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(pulled.status().message()), HasSubstr("leaves the root"));
  EXPECT_TRUE(images_->List().empty());
  // At most the good first layer (with overlay, layers are staged as they arrive and none is
  // committed when one fails); nothing half made, nothing left in staging.
  EXPECT_LE(CommittedSnapshots(), 1);
  for (const auto& info : snapshots_->Walk()) EXPECT_NE(info.kind, snapshotter::Kind::kActive);
  absl::StatusOr<std::vector<std::string>> staging =
      base::ListDirectory(snapshots_->Root() + "/staging");
  if (staging.ok()) {
    EXPECT_TRUE(staging->empty());
  }
}

TEST_P(PullTest, ConcurrentPullsOfOneImageShareTheWork) {
  TestImage image = Busybox();
  auto second = BuildLayer({{Kind::kFile, "big", std::string(3 << 20, 'b')}}, Compression::kGzip);
  ASSERT_TRUE(second.ok());
  image.layers.push_back(*second);
  ASSERT_TRUE(registry_->Push("kapal/shared", "1", image).ok());
  std::vector<absl::StatusOr<ImageRecord>> results(4, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] { results[i] = puller_->Pull(Ref("kapal/shared:1"), {}); });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& result : results) {
    ASSERT_TRUE(result.ok()) << result.status();
    EXPECT_EQ(result->id, results[0]->id);
  }
  EXPECT_EQ(CommittedSnapshots(), 2);
  EXPECT_EQ(images_->List().size(), 1u);
}

TEST_P(PullTest, SecondPullUsesTheCache) {
  ASSERT_TRUE(registry_->Push("kapal/cached", "1", Busybox()).ok());
  ASSERT_TRUE(puller_->Pull(Ref("kapal/cached:1"), {}).ok());
  std::vector<LayerProgress> reports;
  auto again = puller_->Pull(Ref("kapal/cached:1"), {},
                             [&](const LayerProgress& progress) { reports.push_back(progress); });
  ASSERT_TRUE(again.ok());
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_TRUE(reports[0].cached);
}

TEST_P(PullTest, UnknownTagIsNotFoundAndBadReferenceIsInvalid) {
  auto missing = puller_->Pull(Ref("kapal/nothing:1"), {});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
  auto bad = puller_->Pull("Not/A/Reference", {});
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_P(PullTest, AirGappedRegistryIsServedByItsMirrorAlone) {
  ASSERT_TRUE(registry_->Push("pause", "3.9", Busybox()).ok());
  // registry.k8s.io is never contacted: the mirror alone serves it (no fallback to the origin).
  RegistryHostSettings settings;
  settings.mirrors = {"http://" + registry_->Host()};
  settings.fallback_to_origin = false;
  PullOptions options;
  options.hosts = RegistryHosts({{"registry.k8s.io", settings}});
  Puller puller(*content_, *snapshots_, *images_, options);
  auto pulled = puller.Pull("registry.k8s.io/pause:3.9", {});
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_THAT(pulled->repo_tags, ::testing::ElementsAre("registry.k8s.io/pause:3.9"));
  EXPECT_TRUE(images_->Find("registry.k8s.io/pause:3.9").ok());
}

TEST_P(PullTest, DeadMirrorIsSkippedForTheNext) {
  ASSERT_TRUE(registry_->Push("kapal/busybox", "1", Busybox()).ok());
  auto dead_port = testing::PickFreeLoopbackPort();
  ASSERT_TRUE(dead_port.ok());
  RegistryHostSettings settings;
  settings.mirrors = {"127.0.0.1:" + std::to_string(*dead_port), registry_->Host()};
  settings.fallback_to_origin = false;
  PullOptions options;
  options.hosts = RegistryHosts({{"mirrored.example", settings}});
  Puller puller(*content_, *snapshots_, *images_, options);
  auto pulled = puller.Pull("mirrored.example/kapal/busybox:1", {});
  ASSERT_TRUE(pulled.ok()) << pulled.status();

  // With every mirror lacking the image, the error lists what was tried.
  auto missing = puller.Pull("mirrored.example/kapal/absent:1", {});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), HasSubstr("tried"));
}

TEST_P(PullTest, RegistryWithBasicAuth) {
  auto secured = RegistryFixture::Start(RegistryFixture::Auth::kBasic, "kapal", "s3cret");
  ASSERT_TRUE(secured.ok()) << secured.status();
  ASSERT_TRUE((*secured)->Push("kapal/private", "1", Busybox()).ok());
  std::string reference = (*secured)->Host() + "/kapal/private:1";

  auto anonymous = puller_->Pull(reference, {});
  EXPECT_EQ(anonymous.status().code(), absl::StatusCode::kUnauthenticated) << anonymous.status();
  Credentials wrong;
  wrong.username = "kapal";
  wrong.password = "guess";
  EXPECT_EQ(puller_->Pull(reference, wrong).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(images_->List().empty());

  Credentials right;
  right.username = "kapal";
  right.password = "s3cret";
  auto pulled = puller_->Pull(reference, right);
  ASSERT_TRUE(pulled.ok()) << pulled.status();

  // The same credentials from kapal.toml, for a pull request that carries none.
  RegistryHostSettings settings;
  settings.username = "kapal";
  settings.password = "s3cret";
  PullOptions options;
  options.hosts = RegistryHosts({{(*secured)->Host(), settings}});
  ASSERT_TRUE(images_->Remove(pulled->id).ok());
  Puller configured(*content_, *snapshots_, *images_, options);
  EXPECT_TRUE(configured.Pull(reference, {}).ok());
}

TEST_P(PullTest, RegistryThatDemandsTokens) {
  auto secured = RegistryFixture::Start(RegistryFixture::Auth::kToken, "kapal", "t0ken");
  ASSERT_TRUE(secured.ok()) << secured.status();
  ASSERT_TRUE((*secured)->Push("kapal/tokened", "1", Busybox()).ok());
  std::string reference = (*secured)->Host() + "/kapal/tokened:1";
  int before = (*secured)->TokensIssued();

  EXPECT_EQ(puller_->Pull(reference, {}).status().code(), absl::StatusCode::kUnauthenticated);
  Credentials right;
  right.username = "kapal";
  right.password = "t0ken";
  auto pulled = puller_->Pull(reference, right);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_GT((*secured)->TokensIssued(), before) << "the registry's token server was asked";
}

// A push to a registry that demands tokens: refused without credentials, then with them each
// request is answered 401 first and sent again with a token (a layer's file upload too), and
// the image comes back whole by its digest.
TEST_P(PullTest, PushToARegistryThatDemandsTokens) {
  ASSERT_TRUE(registry_->Push("kapal/source", "1", Busybox()).ok());
  auto pulled = puller_->Pull(Ref("kapal/source:1"), {});
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  auto secured = RegistryFixture::Start(RegistryFixture::Auth::kToken, "kapal", "t0ken");
  ASSERT_TRUE(secured.ok()) << secured.status();
  std::string target = (*secured)->Host() + "/kapal/pushed:2";

  Pusher pusher(*content_, RegistryHosts());
  EXPECT_EQ(pusher.Push(*pulled, target, {}).status().code(), absl::StatusCode::kUnauthenticated);
  Credentials right;
  right.username = "kapal";
  right.password = "t0ken";
  int64_t largest_progress = 0;
  auto pushed = pusher.Push(*pulled, target, right, [&](const PushProgress& progress) {
    if (progress.phase == PushProgress::Phase::kPushing) {
      largest_progress = std::max(largest_progress, progress.done);
    }
  });
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_GT(largest_progress, 100000) << "the busybox layer was uploaded with progress";

  ASSERT_TRUE(images_->Remove(pulled->id).ok());
  auto back = puller_->Pull(
      (*secured)->Host() + "/kapal/pushed@" + pushed->manifest_digest.String(), right);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->id, pulled->id);
  InRootfs(*back, [](const std::string& root) {
    struct stat info {};
    EXPECT_EQ(::stat((root + "/bin/busybox").c_str(), &info), 0);
  });
}

// Random bytes of SIZE, so that gzip keeps the layer as large as its file.
std::string Noise(size_t size, uint32_t seed) {
  std::mt19937 random(seed);
  std::string data(size, '\0');
  for (char& byte : data) byte = static_cast<char>(random());
  return data;
}

// A large layer comes as parallel byte ranges from a registry that serves them (docker-registry
// does), its digest checked over the whole; one that does not serve ranges gets one request.
TEST_P(PullTest, LargeLayerIsFetchedInParallelRangesWhereServed) {
  TestImage image = Busybox();
  auto big = BuildLayer({{Kind::kFile, "big", Noise(3 << 20, 7)}}, Compression::kGzip);
  ASSERT_TRUE(big.ok());
  image.layers.push_back(*big);
  ASSERT_TRUE(registry_->Push("kapal/ranges", "1", image).ok());
  PullOptions options;
  options.range_min_bytes = 2 << 20;  // the 3 MiB layer, not busybox's
  options.range_parts = 4;
  for (bool serve_ranges : {true, false}) {
    SCOPED_TRACE(serve_ranges ? "ranges served" : "ranges not served");
    CountingRegistry counting(registry_->Host(), serve_ranges);
    Puller puller(*content_, *snapshots_, *images_, options);
    PullReport report;
    auto pulled = puller.Pull(counting.Host() + "/kapal/ranges:1", {}, nullptr, &report);
    ASSERT_TRUE(pulled.ok()) << pulled.status();
    EXPECT_EQ(report.layers_fetched, 2);
    EXPECT_EQ(report.ranged_layers, serve_ranges ? 1 : 0);
    // With overlay the ranges are unpacked as they join the blob's beginning.
    EXPECT_EQ(report.streamed_layers, GetParam() == snapshotter::Driver::kOverlay ? 2 : 0);
    EXPECT_EQ(counting.RangeRequests(), 4);  // asked either way
    // Served: the four ranges. Not served: the first whole answer stops the ranges (at most
    // four were begun) and one ordinary request follows.
    int requests = counting.BlobRequests(big->digest);
    if (serve_ranges) {
      EXPECT_EQ(requests, 4);
    } else {
      EXPECT_GE(requests, 2);
      EXPECT_LE(requests, 5);
    }
    InRootfs(*pulled, [](const std::string& root) {
      struct stat info {};
      ASSERT_EQ(::stat((root + "/big").c_str(), &info), 0);
      EXPECT_EQ(info.st_size, 3 << 20);
    });
    ASSERT_TRUE(images_->Remove(pulled->id).ok());
    for (const Digest& blob : pulled->blobs) ASSERT_TRUE(content_->Remove(blob).ok());
    ASSERT_TRUE(RemoveUnusedSnapshots(*images_, *snapshots_).ok());  // unpacked again next
  }
}

TEST_P(PullTest, CorruptBlobFetchedInRangesFailsAndKeepsNothing) {
  TestImage image;
  auto big = BuildLayer({{Kind::kFile, "big", Noise(3 << 20, 8)}}, Compression::kGzip);
  ASSERT_TRUE(big.ok());
  image.layers.push_back(*big);
  ASSERT_TRUE(registry_->Push("kapal/corrupt-ranges", "1", image).ok());
  std::string corrupt = big->data;
  corrupt[corrupt.size() / 2] ^= 0x21;
  ASSERT_TRUE(base::WriteFileAtomically(registry_->BlobDataPath(big->digest), corrupt).ok());
  PullOptions options;
  options.range_min_bytes = 1 << 20;
  Puller puller(*content_, *snapshots_, *images_, options);
  auto pulled = puller.Pull(Ref("kapal/corrupt-ranges:1"), {});
  ASSERT_FALSE(pulled.ok());
  EXPECT_EQ(pulled.status().code(), absl::StatusCode::kDataLoss) << pulled.status();
  EXPECT_FALSE(content_->Has(*Digest::Parse(big->digest)));
  EXPECT_TRUE(images_->List().empty());
  EXPECT_EQ(CommittedSnapshots(), 0);
  auto ingest = base::ListDirectory(content_->Root() + "/ingest");
  ASSERT_TRUE(ingest.ok());
  EXPECT_TRUE(ingest->empty());
}

// With overlay a layer is unpacked while it downloads; the tree is kept only when the blob's
// digest matches, and a layer that escapes its root is refused as it is otherwise.
TEST_P(PullTest, LayersAreUnpackedWhileTheyDownload) {
  bool overlay = GetParam() == snapshotter::Driver::kOverlay;
  PullOptions options;
  options.stream_min_bytes = 1;
  Puller puller(*content_, *snapshots_, *images_, options);

  TestImage image = Busybox();
  auto big = BuildLayer({{Kind::kFile, "big", Noise(2 << 20, 9)}}, Compression::kGzip);
  ASSERT_TRUE(big.ok());
  image.layers.push_back(*big);
  ASSERT_TRUE(registry_->Push("kapal/streamed", "1", image).ok());
  PullReport report;
  auto pulled = puller.Pull(Ref("kapal/streamed:1"), {}, nullptr, &report);
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  EXPECT_EQ(report.streamed_layers, overlay ? 2 : 0);
  // The timeline has each fetched layer once, its moments in order; staged only with overlay.
  ASSERT_EQ(report.layers.size(), 2u);
  for (const LayerTimes& layer : report.layers) {
    EXPECT_LE(0, layer.started);
    EXPECT_LE(layer.started, layer.downloaded);
    if (overlay) {
      EXPECT_LE(layer.downloaded, layer.staged);
    } else {
      EXPECT_EQ(layer.staged, 0);
    }
    EXPECT_THAT(report.Timeline(), HasSubstr(layer.digest + " ("));
  }
  EXPECT_NE(report.layers[0].digest, report.layers[1].digest);
  InRootfs(*pulled, [](const std::string& root) {
    struct stat info {};
    ASSERT_EQ(::stat((root + "/big").c_str(), &info), 0);
    EXPECT_EQ(info.st_size, 2 << 20);
    EXPECT_TRUE(Exists(root + "/bin/busybox"));
  });

  TestImage corrupt_image;
  auto other = BuildLayer({{Kind::kFile, "other", Noise(1 << 20, 10)}}, Compression::kGzip);
  ASSERT_TRUE(other.ok());
  corrupt_image.layers.push_back(*other);
  ASSERT_TRUE(registry_->Push("kapal/streamed-corrupt", "1", corrupt_image).ok());
  std::string corrupt = other->data;
  corrupt[corrupt.size() - 100] ^= 0x10;
  ASSERT_TRUE(base::WriteFileAtomically(registry_->BlobDataPath(other->digest), corrupt).ok());
  auto failed = puller.Pull(Ref("kapal/streamed-corrupt:1"), {});
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kDataLoss) << failed.status();
  EXPECT_FALSE(content_->Has(*Digest::Parse(other->digest)));

  TestImage evil_image;
  auto evil = BuildLayer({{Kind::kFile, "../../escaped", "x"}}, Compression::kGzip);
  ASSERT_TRUE(evil.ok());
  evil_image.layers.push_back(*evil);
  ASSERT_TRUE(registry_->Push("kapal/streamed-evil", "1", evil_image).ok());
  auto refused = puller.Pull(Ref("kapal/streamed-evil:1"), {});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("leaves the root"));

  EXPECT_EQ(images_->List().size(), 1u);
  auto staging = base::ListDirectory(snapshots_->Root() + "/staging");
  if (staging.ok()) {
    EXPECT_TRUE(staging->empty());
  }
  auto ingest = base::ListDirectory(content_->Root() + "/ingest");
  ASSERT_TRUE(ingest.ok());
  EXPECT_TRUE(ingest->empty());
}

// Garbage collection running all the while (as kubelet's image GC may while it pulls) never
// removes a layer a pull has committed or found but not yet recorded in its image.
TEST_P(PullTest, PullsSurviveGarbageCollectionRunningMeanwhile) {
  PullOptions options;
  options.stream_min_bytes = 1;
  Puller puller(*content_, *snapshots_, *images_, options);
  TestImage image = Busybox();
  for (int i = 0; i < 4; ++i) {
    auto layer = BuildLayer({{Kind::kFile, "f" + std::to_string(i), Noise(1 << 20, 20 + i)}},
                            Compression::kGzip);
    ASSERT_TRUE(layer.ok());
    image.layers.push_back(*layer);
  }
  ASSERT_TRUE(registry_->Push("kapal/collected", "1", image).ok());
  std::atomic<bool> pulling{true};
  std::thread collector([&] {
    for (int i = 0; i < 2000 && pulling; ++i) {
      EXPECT_TRUE(RemoveUnusedSnapshots(*images_, *snapshots_).ok());
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  });
  // Stopped and joined however the pulls below end (a failed ASSERT returns early).
  struct StopCollector {
    std::atomic<bool>& pulling;
    std::thread& collector;
    ~StopCollector() {
      pulling = false;
      collector.join();
    }
  } stop{pulling, collector};
  for (int round = 0; round < 3; ++round) {
    auto pulled = puller.Pull(Ref("kapal/collected:1"), {});
    ASSERT_TRUE(pulled.ok()) << pulled.status();
    InRootfs(*pulled, [](const std::string& root) { EXPECT_TRUE(Exists(root + "/f3")); });
    ASSERT_TRUE(images_->Remove(pulled->id).ok());
    for (const Digest& blob : pulled->blobs) ASSERT_TRUE(content_->Remove(blob).ok());
  }
  pulling = false;
  ASSERT_TRUE(RemoveUnusedSnapshots(*images_, *snapshots_).ok());
  EXPECT_TRUE(snapshots_->Walk().empty());
}

// Two images on one base layer, pulled at once: the shared layer is fetched and unpacked once.
TEST_P(PullTest, ConcurrentPullsOfImagesThatShareALayerFetchItOnce) {
  TestImage first = Busybox();
  TestImage second;
  second.layers.push_back(first.layers[0]);
  auto first_top = BuildLayer({{Kind::kFile, "one", Noise(1 << 20, 1)}}, Compression::kGzip);
  auto second_top = BuildLayer({{Kind::kFile, "two", Noise(1 << 20, 2)}}, Compression::kGzip);
  ASSERT_TRUE(first_top.ok() && second_top.ok());
  first.layers.push_back(*first_top);
  second.layers.push_back(*second_top);
  ASSERT_TRUE(registry_->Push("kapal/first", "1", first).ok());
  ASSERT_TRUE(registry_->Push("kapal/second", "1", second).ok());
  CountingRegistry counting(registry_->Host(), true);
  std::vector<absl::StatusOr<ImageRecord>> results(4, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (size_t i = 0; i < results.size(); ++i) {
    threads.emplace_back([&, i] {
      results[i] =
          puller_->Pull(counting.Host() + (i % 2 == 0 ? "/kapal/first:1" : "/kapal/second:1"), {});
    });
  }
  for (auto& thread : threads) thread.join();
  for (const auto& result : results) ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(counting.BlobRequests(first.layers[0].digest), 1);
  EXPECT_EQ(counting.BlobRequests(first_top->digest), 1);
  EXPECT_EQ(counting.BlobRequests(second_top->digest), 1);
  EXPECT_EQ(CommittedSnapshots(), 3);
  EXPECT_EQ(images_->List().size(), 2u);
}

// zstd layers are pushed as they are (media type and bytes kept) and pulled back.
TEST_P(PullTest, ZstdImagePushesAndPullsBack) {
  ASSERT_TRUE(registry_->Push("kapal/zstd-source", "1", Busybox(Compression::kZstd)).ok());
  auto pulled = puller_->Pull(Ref("kapal/zstd-source:1"), {});
  ASSERT_TRUE(pulled.ok()) << pulled.status();
  Pusher pusher(*content_, RegistryHosts());
  auto pushed = pusher.Push(*pulled, Ref("kapal/zstd-copy:1"), {});
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  auto manifest = ParseManifest(*content_->ReadAll(pushed->manifest_digest));
  ASSERT_TRUE(manifest.ok());
  EXPECT_EQ(manifest->layers[0].media_type, "application/vnd.oci.image.layer.v1.tar+zstd");
  ASSERT_TRUE(images_->Remove(pulled->id).ok());
  for (const Digest& blob : pulled->blobs) ASSERT_TRUE(content_->Remove(blob).ok());
  PullReport report;
  auto back = puller_->Pull(Ref("kapal/zstd-copy:1"), {}, nullptr, &report);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->id, pulled->id);
  EXPECT_EQ(report.layers_fetched, 1);
  InRootfs(*back, [](const std::string& root) { EXPECT_TRUE(Exists(root + "/bin/busybox")); });
}

INSTANTIATE_TEST_SUITE_P(Drivers, PullTest,
                         ::testing::Values(snapshotter::Driver::kOverlay,
                                           snapshotter::Driver::kNative),
                         [](const ::testing::TestParamInfo<snapshotter::Driver>& param_info) {
                           return param_info.param == snapshotter::Driver::kOverlay ? "Overlay"
                                                                                    : "Native";
                         });
INSTANTIATE_TEST_SUITE_P(Drivers, OverlayPullTest, ::testing::Values(snapshotter::Driver::kOverlay),
                         [](const ::testing::TestParamInfo<snapshotter::Driver>&) {
                           return "Overlay";
                         });

}  // namespace
}  // namespace kapal::images
