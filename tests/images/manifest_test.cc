#include "images/manifest.h"

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kapal::images {
namespace {

std::string D(char c) { return "sha256:" + std::string(64, c); }

TEST(ManifestTest, ParsesAnOciManifest) {
  std::string body = absl::StrCat(
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",)",
      R"("config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":")", D('a'),
      R"(","size":100},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip",)",
      R"("digest":")", D('b'), R"(","size":2000}]})");
  EXPECT_FALSE(IsIndex("", body));
  auto manifest = ParseManifest(body);
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_EQ(manifest->config.digest.String(), D('a'));
  ASSERT_EQ(manifest->layers.size(), 1u);
  EXPECT_EQ(manifest->layers[0].size, 2000);
}

TEST(ManifestTest, RejectsSchema1AndBrokenDescriptors) {
  EXPECT_FALSE(ParseManifest(R"({"schemaVersion":1})").ok());
  EXPECT_FALSE(ParseManifest("not json").ok());
  EXPECT_FALSE(ParseManifest(absl::StrCat(R"({"schemaVersion":2,"config":{"digest":")", D('a'),
                                          R"("},"layers":[]})"))
                   .ok())
      << "no size";
  EXPECT_FALSE(
      ParseManifest(R"({"schemaVersion":2,"config":{"digest":"sha256:xyz","size":1},"layers":[]})")
          .ok());
}

ImageIndex TwoPlatforms() {
  std::string body = absl::StrCat(
      R"({"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[)",
      R"({"digest":")", D('1'), R"(","size":1,"platform":{"os":"linux","architecture":"amd64"}},)",
      R"({"digest":")", D('2'),
      R"(","size":1,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}},)",
      R"({"digest":")", D('3'),
      R"(","size":1,"platform":{"os":"windows","architecture":"amd64"}}]})");
  EXPECT_TRUE(IsIndex("", body));
  auto index = ParseIndex(body);
  EXPECT_TRUE(index.ok()) << index.status();
  return *index;
}

TEST(ManifestTest, SelectsThePlatform) {
  ImageIndex index = TwoPlatforms();
  EXPECT_EQ(SelectPlatform(index, {"linux", "amd64", ""})->digest.String(), D('1'));
  EXPECT_EQ(SelectPlatform(index, {"linux", "arm64", ""})->digest.String(), D('2'))
      << "arm64 without a variant is v8";
  EXPECT_EQ(SelectPlatform(index, {"linux", "arm64", "v8"})->digest.String(), D('2'));
  auto missing = SelectPlatform(index, {"linux", "s390x", ""});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(missing.status().message()), ::testing::HasSubstr("linux/arm64/v8"));
}

TEST(ManifestTest, HostPlatformIsLinux) {
  Platform host = HostPlatform();
  EXPECT_EQ(host.os, "linux");
  EXPECT_FALSE(host.architecture.empty());
}

TEST(ManifestTest, ImageConfig) {
  auto config = ParseImageConfig(absl::StrCat(
      R"({"architecture":"amd64","os":"linux","config":{"User":"1000:1000","StopSignal":"SIGINT"},)",
      R"("rootfs":{"type":"layers","diff_ids":[")", D('c'), R"("]}})"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->user, "1000:1000");
  EXPECT_EQ(config->stop_signal, "SIGINT");
  ASSERT_EQ(config->diff_ids.size(), 1u);
  EXPECT_FALSE(ParseImageConfig(R"({"rootfs":{}})").ok());
}

TEST(ManifestTest, Compression) {
  EXPECT_EQ(*CompressionOf("application/vnd.oci.image.layer.v1.tar"), LayerCompression::kNone);
  EXPECT_EQ(*CompressionOf("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            LayerCompression::kGzip);
  EXPECT_EQ(*CompressionOf("application/vnd.oci.image.layer.v1.tar+zstd"), LayerCompression::kZstd);
  EXPECT_FALSE(CompressionOf("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip").ok());
}

TEST(ManifestTest, ChainIds) {
  Digest a = *Digest::Parse(D('a'));
  Digest b = *Digest::Parse(D('b'));
  std::vector<Digest> chain = ChainIds({a, b});
  ASSERT_EQ(chain.size(), 2u);
  EXPECT_EQ(chain[0], a);
  EXPECT_EQ(chain[1], Digest::Sha256Of(D('a') + " " + D('b')));
  EXPECT_TRUE(ChainIds({}).empty());
}

}  // namespace
}  // namespace kapal::images
