#include "runtime/oci_spec.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include "base/files.h"
#include "base/temp_dir.h"
#include "runtime/cni.h"
#include "runtime/signals.h"

namespace kapal::runtime {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

runtime::v1::ContainerConfig Config(std::vector<std::string> command,
                                    std::vector<std::string> args) {
  runtime::v1::ContainerConfig config;
  config.mutable_metadata()->set_name("c");
  for (const std::string& part : command) config.add_command(part);
  for (const std::string& part : args) config.add_args(part);
  return config;
}

TEST(ContainerArgs, FollowKubernetesRules) {
  ImageRuntimeConfig image;
  image.entrypoint = {"/entry"};
  image.cmd = {"default"};
  EXPECT_THAT(*ContainerArgs(Config({}, {}), image), ElementsAre("/entry", "default"));
  EXPECT_THAT(*ContainerArgs(Config({}, {"mine"}), image), ElementsAre("/entry", "mine"));
  EXPECT_THAT(*ContainerArgs(Config({"/cmd"}, {}), image), ElementsAre("/cmd"));
  EXPECT_THAT(*ContainerArgs(Config({"/cmd"}, {"a"}), image), ElementsAre("/cmd", "a"));
  EXPECT_EQ(ContainerArgs(Config({}, {}), ImageRuntimeConfig{}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ContainerEnv, ContainerValuesReplaceTheImagesAndPathIsAlwaysSet) {
  ImageRuntimeConfig image;
  image.env = {"A=image", "B=image"};
  runtime::v1::ContainerConfig config = Config({"x"}, {});
  auto* env = config.add_envs();
  env->set_key("B");
  env->set_value("container");
  EXPECT_THAT(ContainerEnv(config, image),
              ElementsAre(HasSubstr("PATH=/usr/local/sbin"), "A=image", "B=container"));
}

TEST(CheckClientPath, RefusesRelativeAndDotDot) {
  EXPECT_TRUE(CheckClientPath("/var/lib/data", "mount").ok());
  EXPECT_FALSE(CheckClientPath("var/lib", "mount").ok());
  EXPECT_FALSE(CheckClientPath("/var/../etc", "mount").ok());
  EXPECT_FALSE(CheckClientPath("/..", "mount").ok());
  EXPECT_TRUE(CheckClientPath("/a..b/c", "mount").ok());
}

class ResolveUserTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = base::TempDir::Create("rootfs");
    ASSERT_TRUE(dir.ok());
    rootfs_.emplace(std::move(*dir));
    ASSERT_TRUE(base::MakeDirectories(rootfs_->Join("etc"), 0755).ok());
    ASSERT_TRUE(base::WriteFileAtomically(rootfs_->Join("etc/passwd"),
                                          "root:x:0:0::/root:/bin/sh\n"
                                          "app:x:1000:1001::/home/app:/bin/sh\n")
                    .ok());
    ASSERT_TRUE(base::WriteFileAtomically(rootfs_->Join("etc/group"),
                                          "root:x:0:\napp:x:1001:\nextra:x:2000:app,other\n")
                    .ok());
  }
  std::optional<base::TempDir> rootfs_;
};

TEST_F(ResolveUserTest, NamesNumbersAndGroups) {
  runtime::v1::ContainerConfig config = Config({"x"}, {});
  auto user = ResolveUser(rootfs_->Path(), config, "app");
  ASSERT_TRUE(user.ok()) << user.status();
  EXPECT_EQ(user->uid, 1000u);
  EXPECT_EQ(user->gid, 1001u);
  EXPECT_THAT(user->additional_gids, ElementsAre(1001u, 2000u));

  user = ResolveUser(rootfs_->Path(), config, "1000:0");
  ASSERT_TRUE(user.ok());
  EXPECT_EQ(user->gid, 0u);

  config.mutable_linux()->mutable_security_context()->mutable_run_as_user()->set_value(5);
  config.mutable_linux()->mutable_security_context()->add_supplemental_groups(7);
  user = ResolveUser(rootfs_->Path(), config, "app");
  ASSERT_TRUE(user.ok());
  EXPECT_EQ(user->uid, 5u);
  EXPECT_EQ(user->gid, 0u);  // no passwd entry for 5
  EXPECT_THAT(user->additional_gids, ElementsAre(0u, 7u));

  EXPECT_EQ(ResolveUser(rootfs_->Path(), Config({"x"}, {}), "nobody").status().code(),
            absl::StatusCode::kInvalidArgument);
}

// KEP-3619: Merge adds the image's memberships of the user to the pod's groups, Strict does not.
TEST_F(ResolveUserTest, SupplementalGroupsPolicyMergeOrStrict) {
  runtime::v1::ContainerConfig config = Config({"x"}, {});
  auto* sc = config.mutable_linux()->mutable_security_context();
  sc->mutable_run_as_user()->set_value(1000);
  sc->mutable_run_as_group()->set_value(3000);
  sc->add_supplemental_groups(4000);
  auto merged = ResolveUser(rootfs_->Path(), config, "");
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(merged->gid, 3000u);
  EXPECT_THAT(merged->additional_gids, ElementsAre(2000u, 3000u, 4000u));
  sc->set_supplemental_groups_policy(runtime::v1::Strict);
  auto strict = ResolveUser(rootfs_->Path(), config, "");
  ASSERT_TRUE(strict.ok()) << strict.status();
  EXPECT_THAT(strict->additional_gids, ElementsAre(3000u, 4000u));
}

TEST_F(ResolveUserTest, ASymlinkedPasswdCannotReadTheHosts) {
  ASSERT_EQ(::unlink(rootfs_->Join("etc/passwd").c_str()), 0);
  // Inside the root this points at ROOTFS/etc/shadow-like junk, not the host's file.
  ASSERT_EQ(::symlink("/../../../../etc/passwd", rootfs_->Join("etc/passwd").c_str()), 0);
  // Resolved inside the root, the link leads back to itself: no entries, so "root" (in every
  // host's passwd) is unknown.
  EXPECT_EQ(ResolveUser(rootfs_->Path(), Config({"x"}, {}), "root").status().code(),
            absl::StatusCode::kInvalidArgument);
}

class SpecTest : public ::testing::Test {
 protected:
  absl::StatusOr<nlohmann::json> Build(const runtime::v1::ContainerConfig& config) {
    SpecInputs inputs;
    inputs.container_id = "cid";
    inputs.container = &config;
    inputs.pod = &pod_;
    inputs.rootfs = "/rootfs";
    inputs.hostname = "pod";
    inputs.pod_files = {"/state/pods/p", PodNamespaces{}};
    inputs.cgroups_path = "/kapal/p/cid";
    inputs.min_oom_score_adj = min_oom_;
    return BuildContainerSpec(inputs);
  }
  runtime::v1::PodSandboxConfig pod_;
  int min_oom_ = -1000;
};

TEST_F(SpecTest, DefaultsLikeContainerd) {
  auto spec = Build(Config({"/bin/sh"}, {}));
  ASSERT_TRUE(spec.ok()) << spec.status();
  const auto& process = (*spec)["process"];
  EXPECT_THAT(process["capabilities"]["bounding"].get<std::vector<std::string>>(),
              Contains("CAP_NET_BIND_SERVICE"));
  EXPECT_THAT(process["capabilities"]["bounding"].get<std::vector<std::string>>(),
              Not(Contains("CAP_SYS_ADMIN")));
  EXPECT_THAT((*spec)["linux"]["maskedPaths"].get<std::vector<std::string>>(),
              Contains("/proc/kcore"));
  EXPECT_THAT((*spec)["linux"]["readonlyPaths"].get<std::vector<std::string>>(),
              Contains("/proc/sys"));
  // No profile asked for is unconfined, as CRI says (kubelet sends RuntimeDefault when wanted).
  EXPECT_FALSE((*spec)["linux"].contains("seccomp"));
  EXPECT_EQ((*spec)["linux"]["cgroupsPath"], "/kapal/p/cid");
  nlohmann::json namespaces = (*spec)["linux"]["namespaces"];
  EXPECT_THAT(namespaces.dump(), HasSubstr(R"({"path":"/state/pods/p/net","type":"network"})"));
  EXPECT_EQ((*spec)["hostname"], "pod");
}

TEST_F(SpecTest, CapabilityChangesPrivilegedAndUnconfined) {
  runtime::v1::ContainerConfig config = Config({"/bin/sh"}, {});
  auto* caps = config.mutable_linux()->mutable_security_context()->mutable_capabilities();
  caps->add_add_capabilities("SYS_ADMIN");
  caps->add_drop_capabilities("NET_RAW");
  config.mutable_linux()->mutable_security_context()->mutable_seccomp()->set_profile_type(
      runtime::v1::SecurityProfile::Unconfined);
  auto spec = Build(config);
  ASSERT_TRUE(spec.ok());
  auto bounding = (*spec)["process"]["capabilities"]["bounding"].get<std::vector<std::string>>();
  EXPECT_THAT(bounding, Contains("CAP_SYS_ADMIN"));
  EXPECT_THAT(bounding, Not(Contains("CAP_NET_RAW")));
  EXPECT_FALSE((*spec)["linux"].contains("seccomp"));

  config.mutable_linux()->mutable_security_context()->set_privileged(true);
  spec = Build(config);
  ASSERT_TRUE(spec.ok());
  EXPECT_FALSE((*spec)["linux"].contains("maskedPaths"));
  EXPECT_THAT((*spec)["process"]["capabilities"]["bounding"].get<std::vector<std::string>>(),
              Contains("CAP_SYS_MODULE"));
}

// kubelet sends a hugepage limit for every page size of the node, hugetlb controller or not;
// runc refuses a limit it cannot set, so one for a missing controller is left out.
TEST(CgroupResourcesTest, LimitsOfMissingControllersAreLeftOut) {
  runtime::v1::LinuxContainerResources resources;
  resources.set_memory_limit_in_bytes(64 << 20);
  resources.set_memory_swap_limit_in_bytes(64 << 20);
  auto* hugepage = resources.add_hugepage_limits();
  hugepage->set_page_size("2MB");
  hugepage->set_limit(0);
  (*resources.mutable_unified())["memory.high"] = "50000000";

  nlohmann::json bare = CgroupResources(resources, CgroupSupport{});
  EXPECT_EQ(bare["memory"]["limit"], 64 << 20);
  EXPECT_FALSE(bare["memory"].contains("swap"));
  EXPECT_FALSE(bare.contains("hugepageLimits"));
  EXPECT_FALSE(bare.contains("unified"));

  nlohmann::json full = CgroupResources(resources, CgroupSupport{true, true, true});
  EXPECT_EQ(full["memory"]["swap"], 64 << 20);
  EXPECT_EQ(full["hugepageLimits"].dump(), R"([{"limit":0,"pageSize":"2MB"}])");
  EXPECT_EQ(full["unified"]["memory.high"], "50000000");
}

TEST_F(SpecTest, OomScoreAdjIsClampedToWhatTheRuntimeMaySet) {
  runtime::v1::ContainerConfig config = Config({"/bin/sh"}, {});
  config.mutable_linux()->mutable_resources()->set_oom_score_adj(-998);
  min_oom_ = 0;
  auto spec = Build(config);
  ASSERT_TRUE(spec.ok());
  EXPECT_EQ((*spec)["process"]["oomScoreAdj"], 0);
  config.mutable_linux()->mutable_resources()->set_oom_score_adj(500);
  spec = Build(config);
  EXPECT_EQ((*spec)["process"]["oomScoreAdj"], 500);
}

TEST_F(SpecTest, MountsAreOrderedParentsFirstAndEscapesRefused) {
  runtime::v1::ContainerConfig config = Config({"/bin/sh"}, {});
  auto* deep = config.add_mounts();
  deep->set_host_path("/tmp");
  deep->set_container_path("/a/b");
  auto* shallow = config.add_mounts();
  shallow->set_host_path("/tmp");
  shallow->set_container_path("/a");
  shallow->set_readonly(true);
  shallow->set_propagation(runtime::v1::PROPAGATION_HOST_TO_CONTAINER);
  auto spec = Build(config);
  ASSERT_TRUE(spec.ok()) << spec.status();
  std::vector<std::string> order;
  for (const auto& mount : (*spec)["mounts"]) order.push_back(mount["destination"]);
  auto a = std::find(order.begin(), order.end(), "/a");
  auto ab = std::find(order.begin(), order.end(), "/a/b");
  ASSERT_NE(a, order.end());
  EXPECT_LT(a, ab);
  EXPECT_THAT((*spec)["mounts"].dump(), HasSubstr(R"(["rbind","ro","rslave"])"));

  deep->set_host_path("/tmp/../etc");
  EXPECT_EQ(Build(config).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CniAddresses, StripPrefixesAndPutIpv4First) {
  nlohmann::json result = {{"ips", {{{"address", "fd00::5/64"}}, {{"address", "10.88.0.5/16"}}}}};
  EXPECT_THAT(CniNetwork::Addresses(result), ElementsAre("10.88.0.5", "fd00::5"));
  EXPECT_TRUE(CniNetwork::Addresses(nlohmann::json::object()).empty());
}

TEST(ParseSignal, NamesNumbersAndJunk) {
  EXPECT_EQ(ParseSignal("SIGTERM"), SIGTERM);
  EXPECT_EQ(ParseSignal("quit"), SIGQUIT);
  EXPECT_EQ(ParseSignal("9"), 9);
  EXPECT_EQ(ParseSignal("SIGNOPE"), 0);
  EXPECT_EQ(ParseSignal(""), 0);
}

}  // namespace
}  // namespace kapal::runtime
