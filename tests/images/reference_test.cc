#include "images/reference.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kapal::images {
namespace {

const char kHex[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct NormalizeCase {
  std::string input;
  std::string normalized;
};

class NormalizeTest : public ::testing::TestWithParam<NormalizeCase> {};

TEST_P(NormalizeTest, AsDockerAndContainerdDo) {
  absl::StatusOr<Reference> ref = ParseReference(GetParam().input);
  ASSERT_TRUE(ref.ok()) << ref.status();
  EXPECT_EQ(ref->String(), GetParam().normalized);
  // Normalizing is idempotent.
  absl::StatusOr<Reference> again = ParseReference(ref->String());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *ref);
}

INSTANTIATE_TEST_SUITE_P(
    Reference, NormalizeTest,
    ::testing::Values(NormalizeCase{"busybox", "docker.io/library/busybox:latest"},
                      NormalizeCase{"busybox:1.36", "docker.io/library/busybox:1.36"},
                      NormalizeCase{"library/busybox", "docker.io/library/busybox:latest"},
                      NormalizeCase{"user/app:v1", "docker.io/user/app:v1"},
                      NormalizeCase{"docker.io/busybox", "docker.io/library/busybox:latest"},
                      NormalizeCase{"index.docker.io/busybox", "docker.io/library/busybox:latest"},
                      NormalizeCase{"registry.k8s.io/pause:3.9", "registry.k8s.io/pause:3.9"},
                      NormalizeCase{"127.0.0.1:5000/a/b:tag", "127.0.0.1:5000/a/b:tag"},
                      NormalizeCase{"localhost/app", "localhost/app:latest"},
                      NormalizeCase{"localhost:5000/app", "localhost:5000/app:latest"},
                      NormalizeCase{"[::1]:5000/app:1", "[::1]:5000/app:1"},
                      NormalizeCase{"Registry.Example/app", "Registry.Example/app:latest"},
                      NormalizeCase{"ghcr.io/org/sub/app:1.0_rc-2", "ghcr.io/org/sub/app:1.0_rc-2"},
                      NormalizeCase{"a/b__c/d-e--f/g.h", "docker.io/a/b__c/d-e--f/g.h:latest"},
                      NormalizeCase{std::string("busybox@sha256:") + kHex,
                                    std::string("docker.io/library/busybox@sha256:") + kHex},
                      NormalizeCase{std::string("127.0.0.1:5000/a/b@sha256:") + kHex,
                                    std::string("127.0.0.1:5000/a/b@sha256:") + kHex},
                      NormalizeCase{std::string("busybox:1.36@sha256:") + kHex,
                                    std::string("docker.io/library/busybox:1.36@sha256:") + kHex}),
    [](const ::testing::TestParamInfo<NormalizeCase>& param_info) {
      return "Case" + std::to_string(param_info.index);
    });

TEST(ReferenceTest, Parts) {
  absl::StatusOr<Reference> ref = ParseReference("127.0.0.1:5000/a/b:tag");
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(ref->domain, "127.0.0.1:5000");
  EXPECT_EQ(ref->path, "a/b");
  EXPECT_EQ(ref->tag, "tag");
  EXPECT_FALSE(ref->digest.has_value());
  EXPECT_EQ(ref->Name(), "127.0.0.1:5000/a/b");
  EXPECT_EQ(ref->Canonical(), "127.0.0.1:5000/a/b:tag");
}

TEST(ReferenceTest, DigestDecidesTheCanonicalForm) {
  absl::StatusOr<Reference> ref = ParseReference(std::string("app:1@sha256:") + kHex);
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(ref->tag, "1");
  EXPECT_EQ(ref->Canonical(), std::string("docker.io/library/app@sha256:") + kHex);
}

struct BadCase {
  std::string input;
  std::string why;
};

class BadReferenceTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(BadReferenceTest, IsInvalidArgumentWithTheReason) {
  absl::StatusOr<Reference> ref = ParseReference(GetParam().input);
  ASSERT_FALSE(ref.ok()) << ref->String();
  EXPECT_EQ(ref.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(ref.status().message()), ::testing::HasSubstr(GetParam().why));
}

INSTANTIATE_TEST_SUITE_P(
    Reference, BadReferenceTest,
    ::testing::Values(BadCase{"", "empty"}, BadCase{"Busybox", "must be lowercase"},
                      BadCase{"docker.io/Library/busybox", "must be lowercase"},
                      BadCase{"busybox:", "invalid tag"}, BadCase{"busybox:-x", "invalid tag"},
                      BadCase{"busybox:" + std::string(129, 'a'), "invalid tag"},
                      BadCase{"busybox@sha256:abc", "64 lowercase hex digits"},
                      BadCase{"busybox@sha256:" + std::string(64, 'G'), "64 lowercase hex digits"},
                      BadCase{"busybox@md5", "no algorithm"},
                      BadCase{"a//b", "invalid repository path component \"\""},
                      BadCase{"a/-b", "invalid repository path component"},
                      BadCase{"a/b.", "invalid repository path component"},
                      BadCase{"a/b___c", "invalid repository path component"},
                      BadCase{"host:port/app", "invalid registry"},
                      BadCase{"bad_host.com/app", "invalid registry"},
                      BadCase{"registry.example/", "no repository name"},
                      BadCase{":tag", "no repository name"},
                      BadCase{"a b", "invalid repository path component"},
                      BadCase{"a/" + std::string(300, 'b'), "longer than 255"},
                      BadCase{kHex, "image id"}),
    [](const ::testing::TestParamInfo<BadCase>& param_info) {
      return "Case" + std::to_string(param_info.index);
    });

TEST(DigestTest, ParseAndHash) {
  absl::StatusOr<Digest> digest = Digest::Parse(std::string("sha256:") + kHex);
  ASSERT_TRUE(digest.ok());
  EXPECT_EQ(digest->Algorithm(), "sha256");
  EXPECT_EQ(digest->Short(), "0123456789ab");
  // sha256("abc") from FIPS 180-2.
  EXPECT_EQ(Digest::Sha256Of("abc").String(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_FALSE(Digest::Parse("sha256").ok());
  EXPECT_FALSE(Digest::Parse("SHA256:" + std::string(kHex)).ok());
  EXPECT_FALSE(Digest::Parse("sha512:" + std::string(kHex)).ok()) << "sha512 has 128 digits";
  EXPECT_TRUE(Digest::Parse("blake3:" + std::string(kHex)).ok()) << "well-formed, other algorithm";
}

TEST(DigestTest, StreamingHashEqualsOneShot) {
  absl::StatusOr<Hasher> hasher = Hasher::ForAlgorithm("sha256");
  ASSERT_TRUE(hasher.ok());
  hasher->Update("a", 1);
  hasher->Update("bc", 2);
  EXPECT_EQ(hasher->Finish(), Digest::Sha256Of("abc"));
  EXPECT_EQ(Hasher::ForAlgorithm("md5").status().code(), absl::StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace kapal::images
