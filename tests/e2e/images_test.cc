// kapald's ImageService end to end: the real daemon pulling from the real registry.
#include <SQLiteCpp/SQLiteCpp.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "images/digest.h"
#include "nlohmann/json.hpp"
#include "tests/fixtures/kapald_fixture.h"
#include "tests/fixtures/registry_fixture.h"

namespace kapal::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

class ImageServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto registry = RegistryFixture::Start();
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = std::move(*registry);
    auto kapald = KapaldInstance::Start();
    ASSERT_TRUE(kapald.ok()) << kapald.status();
    kapald_ = std::move(*kapald);
    auto rootfs = BusyboxRootfs();
    ASSERT_TRUE(rootfs.ok());
    auto layer = BuildLayer(*rootfs, Compression::kGzip);
    ASSERT_TRUE(layer.ok());
    busybox_.layers.push_back(*layer);
    busybox_.user = "1000";
  }

  std::string Ref(const std::string& name) { return registry_->Host() + "/" + name; }

  grpc::Status Pull(const std::string& image, std::string* image_ref = nullptr) {
    runtime::v1::PullImageRequest request;
    request.mutable_image()->set_image(image);
    runtime::v1::PullImageResponse response;
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
    grpc::Status status = kapald_->ImageStub()->PullImage(context.get(), request, &response);
    if (image_ref != nullptr) *image_ref = response.image_ref();
    return status;
  }

  runtime::v1::ImageStatusResponse Status(const std::string& image, bool verbose = false) {
    runtime::v1::ImageStatusRequest request;
    request.mutable_image()->set_image(image);
    request.set_verbose(verbose);
    runtime::v1::ImageStatusResponse response;
    grpc::Status status = kapald_->ImageStub()->ImageStatus(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response;
  }

  grpc::Status Remove(const std::string& image) {
    runtime::v1::RemoveImageRequest request;
    request.mutable_image()->set_image(image);
    runtime::v1::RemoveImageResponse response;
    return kapald_->ImageStub()->RemoveImage(Context().get(), request, &response);
  }

  std::vector<runtime::v1::Image> List(const std::string& filter = "") {
    runtime::v1::ListImagesRequest request;
    if (!filter.empty()) request.mutable_filter()->mutable_image()->set_image(filter);
    runtime::v1::ListImagesResponse response;
    EXPECT_TRUE(kapald_->ImageStub()->ListImages(Context().get(), request, &response).ok());
    return {response.images().begin(), response.images().end()};
  }

  uint64_t ImageBytes() {
    runtime::v1::ImageFsInfoResponse response;
    EXPECT_TRUE(kapald_->ImageStub()->ImageFsInfo(Context().get(), {}, &response).ok());
    EXPECT_EQ(response.image_filesystems_size(), 1);
    EXPECT_EQ(response.image_filesystems(0).fs_id().mountpoint(), kapald_->RootDir());
    return response.image_filesystems(0).used_bytes().value();
  }

  std::unique_ptr<RegistryFixture> registry_;
  std::unique_ptr<KapaldInstance> kapald_;
  TestImage busybox_;
};

TEST_F(ImageServiceTest, PullListStatusByEveryForm) {
  auto digest = registry_->Push("kapal/busybox", "1.36", busybox_);
  ASSERT_TRUE(digest.ok());
  std::string image_ref;
  grpc::Status pulled = Pull(Ref("kapal/busybox:1.36"), &image_ref);
  ASSERT_TRUE(pulled.ok()) << pulled.error_message() << kapald_->Log();
  std::string config_digest = images::Digest::Sha256Of(busybox_.ConfigJson()).String();
  EXPECT_EQ(image_ref, config_digest);

  std::vector<runtime::v1::Image> listed = List();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].id(), config_digest);
  EXPECT_THAT(listed[0].repo_tags(), ElementsAre(Ref("kapal/busybox:1.36")));
  EXPECT_THAT(listed[0].repo_digests(), ElementsAre(Ref("kapal/busybox@") + *digest));
  EXPECT_GT(listed[0].size(), busybox_.layers[0].data.size());
  EXPECT_EQ(listed[0].uid().value(), 1000);

  for (const std::string& form : {Ref("kapal/busybox:1.36"), Ref("kapal/busybox@") + *digest,
                                  config_digest, config_digest.substr(7, 12)}) {
    EXPECT_EQ(Status(form).image().id(), config_digest) << form;
  }
  auto verbose = Status(config_digest, true);
  auto info = nlohmann::json::parse(verbose.info().at("info"));
  EXPECT_EQ(info["imageSpec"]["config"]["User"], "1000");
  EXPECT_THAT(info["chainID"].get<std::string>(), HasSubstr("sha256:"));
  EXPECT_EQ(List(Ref("kapal/busybox:1.36")).size(), 1u);
  EXPECT_EQ(List(Ref("kapal/busybox:other")).size(), 0u);
}

TEST_F(ImageServiceTest, UnknownImageStatusIsEmptyNotAnError) {
  auto response = Status(Ref("kapal/never:1"));
  EXPECT_FALSE(response.has_image());
}

TEST_F(ImageServiceTest, BadReferenceIsInvalidArgumentAndMissingImageIsNotFound) {
  // Upper case in the repository path (an upper-case first component would be a registry host).
  grpc::Status bad = Pull("library/BusyBox");
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad.error_message(), HasSubstr("must be lowercase"));
  grpc::Status missing = Pull(Ref("kapal/missing:1"));
  EXPECT_EQ(missing.error_code(), grpc::StatusCode::NOT_FOUND) << missing.error_message();
  EXPECT_THAT(missing.error_message(), HasSubstr("kapal/missing"));
  EXPECT_TRUE(List().empty());
}

TEST_F(ImageServiceTest, RemovingOneOfTwoTagsKeepsTheImageAndTheLastFreesTheSpace) {
  ASSERT_TRUE(registry_->Push("kapal/busybox", "a", busybox_).ok());
  ASSERT_TRUE(registry_->Push("kapal/busybox", "b", busybox_).ok());
  uint64_t empty = ImageBytes();
  ASSERT_TRUE(Pull(Ref("kapal/busybox:a")).ok());
  ASSERT_TRUE(Pull(Ref("kapal/busybox:b")).ok());
  uint64_t full = ImageBytes();
  EXPECT_GT(full, empty + 2 * busybox_.layers[0].data.size()) << "blob and unpacked layer";

  ASSERT_TRUE(Remove(Ref("kapal/busybox:a")).ok());
  auto remaining = List();
  ASSERT_EQ(remaining.size(), 1u);
  EXPECT_THAT(remaining[0].repo_tags(), ElementsAre(Ref("kapal/busybox:b")));
  EXPECT_EQ(ImageBytes(), full);

  ASSERT_TRUE(Remove(Ref("kapal/busybox:b")).ok());
  EXPECT_TRUE(List().empty());
  EXPECT_LT(ImageBytes(), empty + 64 * 1024) << "content and snapshots were collected";
  EXPECT_TRUE(Remove(Ref("kapal/busybox:b")).ok()) << "removing what is gone succeeds";
}

TEST_F(ImageServiceTest, RemoveByIdRemovesEveryTag) {
  ASSERT_TRUE(registry_->Push("kapal/busybox", "a", busybox_).ok());
  ASSERT_TRUE(registry_->Push("kapal/other", "b", busybox_).ok());
  std::string id;
  ASSERT_TRUE(Pull(Ref("kapal/busybox:a"), &id).ok());
  ASSERT_TRUE(Pull(Ref("kapal/other:b")).ok());
  ASSERT_TRUE(Remove(id).ok());
  EXPECT_TRUE(List().empty());
}

TEST_F(ImageServiceTest, KilledPullLeavesNothingHalfDoneAndTheNextPullSucceeds) {
  // Three layers of incompressible data, so the download takes long enough to be interrupted.
  TestImage big = busybox_;
  std::mt19937_64 random(42);
  for (int i = 0; i < 3; ++i) {
    std::string noise(24 << 20, '\0');
    for (size_t j = 0; j + 8 <= noise.size(); j += 8) {
      uint64_t value = random();
      std::memcpy(&noise[j], &value, 8);
    }
    auto layer = BuildLayer({{LayerEntry::Kind::kFile, "noise" + std::to_string(i), noise}},
                            Compression::kGzip);
    ASSERT_TRUE(layer.ok());
    big.layers.push_back(*layer);
  }
  ASSERT_TRUE(registry_->Push("kapal/big", "1", big).ok());

  grpc::Status interrupted;
  std::thread pull([&] { interrupted = Pull(Ref("kapal/big:1")); });
  // Kill once a download is visibly under way.
  std::string ingest = kapald_->RootDir() + "/content/ingest";
  bool in_progress = false;
  for (int i = 0; i < 2000 && !in_progress; ++i) {
    if (DIR* dir = ::opendir(ingest.c_str())) {
      while (dirent* entry = ::readdir(dir)) in_progress |= entry->d_name[0] != '.';
      ::closedir(dir);
    }
    if (!in_progress) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  kapald_->Process().Kill();
  pull.join();
  ASSERT_TRUE(in_progress) << "the pull finished before it could be interrupted";
  EXPECT_FALSE(interrupted.ok());

  ASSERT_TRUE(kapald_->Restart().ok()) << kapald_->Log();
  EXPECT_TRUE(List().empty());
  {
    SQLite::Database db(kapald_->RootDir() + "/kapal.db", SQLite::OPEN_READONLY);
    EXPECT_EQ(db.execAndGet("SELECT COUNT(*) FROM snapshots WHERE kind = 'active'").getInt(), 0);
  }
  grpc::Status again = Pull(Ref("kapal/big:1"));
  ASSERT_TRUE(again.ok()) << again.error_message();
  EXPECT_EQ(List().size(), 1u);
}

// Layers whose files kapald did not wait for (their background sync had not come yet).
int UnsyncedLayers(const std::string& root_dir) {
  SQLite::Database db(root_dir + "/kapal.db", SQLite::OPEN_READONLY);
  return db.execAndGet("SELECT COUNT(*) FROM snapshots WHERE unsynced_boot != ''").getInt();
}

int Occurrences(const std::string& text, const std::string& needle) {
  int count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

TEST_F(ImageServiceTest, LayersNotSyncedWhenTheMachineWentDownAreUnpackedAgainAtStart) {
  ASSERT_TRUE(registry_->Push("kapal/busybox", "1", busybox_).ok());
  ASSERT_TRUE(Pull(Ref("kapal/busybox:1")).ok());
  // The pull returned before the layer's files were synced (within 10 s they will be).
  ASSERT_EQ(UnsyncedLayers(kapald_->RootDir()), 1);

  // The machine goes down first: kapald dies with it, and the record of the layer names a boot
  // that is not this one when kapald starts again. The file the disk had not received is cut.
  kapald_->Process().Kill();
  std::string busybox_in_layer;
  {
    SQLite::Database db(kapald_->RootDir() + "/kapal.db", SQLite::OPEN_READWRITE);
    db.exec("UPDATE snapshots SET unsynced_boot = 'an-earlier-boot' WHERE unsynced_boot != ''");
    busybox_in_layer =
        db.execAndGet("SELECT directory FROM snapshots WHERE kind = 'committed'").getString() +
        "/fs/bin/busybox";
  }
  ASSERT_EQ(::truncate(busybox_in_layer.c_str(), 4096), 0);
  ASSERT_TRUE(kapald_->Restart().ok()) << kapald_->Log();
  EXPECT_THAT(kapald_->Log(),
              HasSubstr("unpacked 1 layers again from their blobs: the machine went down"));
  struct stat unpacked {};
  struct stat original {};
  ASSERT_EQ(::stat(busybox_in_layer.c_str(), &unpacked), 0);
  ASSERT_EQ(::stat("/bin/busybox", &original), 0);
  EXPECT_EQ(unpacked.st_size, original.st_size);
  EXPECT_EQ(UnsyncedLayers(kapald_->RootDir()), 0);

  // kapald alone dies, the machine stays up: the page cache has the files, the next start
  // syncs them without unpacking anything again.
  TestImage other = busybox_;
  auto layer =
      BuildLayer({{LayerEntry::Kind::kFile, "other", "another layer"}}, Compression::kGzip);
  ASSERT_TRUE(layer.ok());
  other.layers.push_back(*layer);
  ASSERT_TRUE(registry_->Push("kapal/other", "1", other).ok());
  ASSERT_TRUE(Pull(Ref("kapal/other:1")).ok());
  ASSERT_EQ(UnsyncedLayers(kapald_->RootDir()), 1);
  kapald_->Process().Kill();
  ASSERT_TRUE(kapald_->Restart().ok()) << kapald_->Log();
  for (int i = 0; i < 100 && UnsyncedLayers(kapald_->RootDir()) > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(UnsyncedLayers(kapald_->RootDir()), 0);
  EXPECT_EQ(Occurrences(kapald_->Log(), "layers again from their blobs"), 1);
  EXPECT_EQ(List().size(), 2u);
}

TEST_F(ImageServiceTest, UnsyncedLayersAreCountedInMetricsAndInfo) {
  ASSERT_TRUE(registry_->Push("kapal/busybox", "1", busybox_).ok());
  ASSERT_TRUE(Pull(Ref("kapal/busybox:1")).ok());
  auto scrape = [&] {
    absl::StatusOr<std::string> address = kapald_->MetricsAddress();
    EXPECT_TRUE(address.ok()) << address.status();
    return RunCommand({"/usr/bin/curl", "-sf", "http://" + address.value_or("") + "/metrics"}).out;
  };
  // The background sync comes 10 s after the pull: not yet.
  EXPECT_THAT(scrape(), HasSubstr("kapal_image_layers_unsynced{boot=\"this\"} 1\n"));
  CommandResult info = kapald_->Kapalctl({"info"});
  ASSERT_EQ(info.exit_code, 0) << info.err;
  EXPECT_EQ(nlohmann::json::parse(info.out)["runtime"]["unsyncedLayers"],
            nlohmann::json({{"thisBoot", 1}, {"earlierBoot", 0}}));

  // The machine went down before the sync, and the layer's blob is gone too (removed by hand):
  // the layer cannot be unpacked again, kapald says so and keeps counting it.
  kapald_->Process().Kill();
  {
    SQLite::Database db(kapald_->RootDir() + "/kapal.db", SQLite::OPEN_READWRITE);
    db.exec("UPDATE snapshots SET unsynced_boot = 'an-earlier-boot' WHERE unsynced_boot != ''");
  }
  std::string blob = busybox_.layers[0].digest;
  ASSERT_EQ(::unlink((kapald_->RootDir() + "/content/blobs/sha256/" + blob.substr(7)).c_str()), 0);
  ASSERT_TRUE(kapald_->Restart().ok()) << kapald_->Log();
  EXPECT_THAT(kapald_->Log(),
              HasSubstr("could not unpack a layer again after the machine went down"));
  std::string metrics = scrape();
  EXPECT_THAT(metrics, HasSubstr("kapal_image_layers_unsynced{boot=\"this\"} 0\n"));
  EXPECT_THAT(metrics, HasSubstr("kapal_image_layers_unsynced{boot=\"earlier\"} 1\n"));
  CommandResult table = kapald_->Kapalctl({"info", "-o", "table"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("0 waiting for the background sync, 1 left by a machine crash"));
}

TEST_F(ImageServiceTest, PullMetricsCountResults) {
  ASSERT_TRUE(registry_->Push("kapal/busybox", "1", busybox_).ok());
  ASSERT_TRUE(Pull(Ref("kapal/busybox:1")).ok());
  ASSERT_FALSE(Pull(Ref("kapal/busybox:2")).ok());
  auto address = kapald_->MetricsAddress();
  ASSERT_TRUE(address.ok());
  CommandResult scrape = RunCommand({"/usr/bin/curl", "-sf", "http://" + *address + "/metrics"});
  EXPECT_THAT(scrape.out, HasSubstr("kapal_image_pulls_total{result=\"success\"} 1"));
  EXPECT_THAT(scrape.out, HasSubstr("kapal_image_pulls_total{result=\"failure\"} 1"));
}

TEST_F(ImageServiceTest, KapalctlPullImagesInspectRemove) {
  ASSERT_TRUE(registry_->Push("kapal/busybox", "1.36", busybox_).ok());
  std::string ref = Ref("kapal/busybox:1.36");
  std::string id = images::Digest::Sha256Of(busybox_.ConfigJson()).String();

  CommandResult pull = kapald_->Kapalctl({"pull", ref});
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  // Not a terminal: one plain line per layer, then crictl's closing line.
  EXPECT_THAT(pull.out, HasSubstr(busybox_.layers[0].digest.substr(7, 13) + "  done "));
  EXPECT_THAT(pull.out, HasSubstr("Image is up to date for " + id));
  EXPECT_EQ(pull.out.find("\x1b["), std::string::npos) << "no terminal escapes in a pipe";
  CommandResult again = kapald_->Kapalctl({"image", "pull", ref});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_THAT(again.out, HasSubstr("already present"));

  CommandResult table = kapald_->Kapalctl({"images"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("IMAGE"));
  EXPECT_THAT(table.out, HasSubstr(Ref("kapal/busybox")));
  EXPECT_THAT(table.out, HasSubstr("1.36"));
  EXPECT_THAT(table.out, HasSubstr(id.substr(7, 13)));
  CommandResult quiet = kapald_->Kapalctl({"image", "ls", "-q"});
  EXPECT_EQ(quiet.out, id + "\n");
  CommandResult digests = kapald_->Kapalctl({"images", "--digests"});
  EXPECT_THAT(digests.out, HasSubstr("DIGEST"));
  CommandResult json = kapald_->Kapalctl({"images", "-o", "json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(nlohmann::json::parse(json.out)["images"][0]["id"], id);

  CommandResult inspect = kapald_->Kapalctl({"inspecti", ref});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  auto inspected = nlohmann::json::parse(inspect.out);
  EXPECT_EQ(inspected["status"]["id"], id);
  EXPECT_EQ(inspected["info"]["imageSpec"]["config"]["User"], "1000");
  CommandResult fsinfo = kapald_->Kapalctl({"imagefsinfo"});
  ASSERT_EQ(fsinfo.exit_code, 0) << fsinfo.err;
  EXPECT_EQ(nlohmann::json::parse(fsinfo.out)["imageFilesystems"][0]["fsId"]["mountpoint"],
            kapald_->RootDir());

  CommandResult typo = kapald_->Kapalctl({"rmi", Ref("kapal/busybox:typo")});
  EXPECT_EQ(typo.exit_code, 1);
  EXPECT_THAT(typo.err, HasSubstr("no such image"));
  CommandResult removed = kapald_->Kapalctl({"image", "rm", ref});
  ASSERT_EQ(removed.exit_code, 0) << removed.err;
  EXPECT_THAT(removed.out, HasSubstr("Deleted: " + ref));
  EXPECT_TRUE(List().empty());
}

// A tar of FILES (path → content), for archives the tests assemble by hand.
std::string Tar(const std::vector<std::pair<std::string, std::string>>& files) {
  std::vector<LayerEntry> entries;
  for (const auto& [path, content] : files)
    entries.push_back({LayerEntry::Kind::kFile, path, content});
  auto tar = BuildLayer(entries, Compression::kNone);
  EXPECT_TRUE(tar.ok());
  return tar->data;
}

TEST_F(ImageServiceTest, ExportThenImportRestoresTheImage) {
  ASSERT_TRUE(registry_->Push("kapal/busybox", "1.36", busybox_).ok());
  std::string ref = Ref("kapal/busybox:1.36");
  std::string id;
  ASSERT_TRUE(Pull(ref, &id).ok());
  auto dir = base::TempDir::Create("kapal-archive");
  ASSERT_TRUE(dir.ok());
  std::string file = dir->Join("busybox.tar");
  CommandResult exported = kapald_->Kapalctl({"image", "export", ref, file});
  ASSERT_EQ(exported.exit_code, 0) << exported.err;
  EXPECT_THAT(exported.out, HasSubstr("Exported " + ref));
  ASSERT_TRUE(Remove(id).ok());
  ASSERT_TRUE(List().empty());

  CommandResult imported = kapald_->Kapalctl({"image", "import", file});
  ASSERT_EQ(imported.exit_code, 0) << imported.err << kapald_->Log();
  EXPECT_THAT(imported.out, HasSubstr("Imported " + ref));
  auto images = List();
  ASSERT_EQ(images.size(), 1u);
  EXPECT_EQ(images[0].id(), id);
  EXPECT_THAT(images[0].repo_tags(), ElementsAre(ref));
  // The imported image is whole: it exports again, byte for byte the same archive.
  std::string again = dir->Join("again.tar");
  ASSERT_EQ(kapald_->Kapalctl({"image", "export", id, again}).exit_code, 0);
  EXPECT_EQ(base::ReadFile(again).value_or("a"), base::ReadFile(file).value_or("b"));
}

TEST_F(ImageServiceTest, DockerSaveArchiveImports) {
  auto layer = BuildLayer(*BusyboxRootfs(), Compression::kNone);
  ASSERT_TRUE(layer.ok());
  TestImage image;
  image.layers.push_back(*layer);
  std::string config = image.ConfigJson();
  std::string config_name = images::Digest::Sha256Of(config).Hex() + ".json";
  std::string manifest =
      absl::StrCat(R"([{"Config":")", config_name,
                   R"(","RepoTags":["example.com/app:1"],"Layers":["l1/layer.tar"]}])");
  auto dir = base::TempDir::Create("kapal-archive");
  ASSERT_TRUE(dir.ok());
  std::string file = dir->Join("saved.tar");
  ASSERT_TRUE(base::WriteFileAtomically(file, Tar({{"manifest.json", manifest},
                                                   {config_name, config},
                                                   {"l1/layer.tar", layer->data}}))
                  .ok());
  CommandResult imported = kapald_->Kapalctl({"image", "import", file});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  auto images = List();
  ASSERT_EQ(images.size(), 1u);
  EXPECT_EQ(images[0].id(), images::Digest::Sha256Of(config).String());
  EXPECT_THAT(images[0].repo_tags(), ElementsAre("example.com/app:1"));
}

TEST_F(ImageServiceTest, TamperedArchiveIsRefusedAndKeepsNothing) {
  std::string honest = "honest content";
  std::string name = "blobs/sha256/" + images::Digest::Sha256Of(honest).Hex();
  std::string index = R"({"schemaVersion":2,"manifests":[]})";
  auto dir = base::TempDir::Create("kapal-archive");
  ASSERT_TRUE(dir.ok());
  std::string file = dir->Join("tampered.tar");
  ASSERT_TRUE(
      base::WriteFileAtomically(file, Tar({{"oci-layout", R"({"imageLayoutVersion":"1.0.0"})"},
                                           {"index.json", index},
                                           {name, "tampered content"}}))
          .ok());
  CommandResult imported = kapald_->Kapalctl({"image", "import", file});
  EXPECT_EQ(imported.exit_code, 1);
  EXPECT_THAT(imported.err, HasSubstr("DATA_LOSS"));
  EXPECT_THAT(imported.err, HasSubstr("digest mismatch"));
  EXPECT_TRUE(List().empty());
  CommandResult garbage = kapald_->Kapalctl({"image", "import", "/etc/hostname"});
  EXPECT_EQ(garbage.exit_code, 1);
}

TEST_F(ImageServiceTest, KapalctlPullReportsFailuresWithTheCode) {
  CommandResult missing = kapald_->Kapalctl({"pull", Ref("kapal/missing:1")});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_THAT(missing.err, HasSubstr("Pull: NOT_FOUND"));
}

}  // namespace
}  // namespace kapal::testing
