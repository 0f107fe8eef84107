// The Docker create body as CRI configs: what `docker run` flags become.
#include "docker/translate.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/cni.h"

namespace kapal::docker {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TranslateContext Context() {
  TranslateContext context;
  context.image_id = "sha256:abc";
  context.image_reference = "busybox";
  context.volume_path = [](const std::string& name) -> absl::StatusOr<std::string> {
    return "/volumes/" + name + "/_data";
  };
  context.network_exists = [](const std::string& name) { return name == "backend"; };
  context.free_port = []() -> absl::StatusOr<int> { return 40000; };
  return context;
}

TEST(TranslateTest, RunFlagsBecomeThePodAndContainerConfigs) {
  nlohmann::json body = nlohmann::json::parse(R"({
    "Image": "busybox", "Cmd": ["echo", "hi"], "Env": ["A=1", "B=x=y"], "WorkingDir": "/w",
    "User": "1000:2000", "Tty": true, "OpenStdin": true, "StdinOnce": true,
    "Labels": {"team": "a"},
    "HostConfig": {"Binds": ["data:/data:ro", "/srv:/srv"], "Memory": 67108864,
                   "NanoCpus": 500000000,
                   "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}],
                                    "53/udp": [{"HostIp": "", "HostPort": ""}]},
                   "CapAdd": ["NET_ADMIN"], "CapDrop": ["chown"],
                   "SecurityOpt": ["no-new-privileges"], "RestartPolicy": {"Name": "no"}}
  })");
  absl::StatusOr<Translated> out = TranslateCreate(body, "web", Context());
  ASSERT_TRUE(out.ok()) << out.status();
  const auto& pod = out->pod;
  EXPECT_EQ(pod.metadata().name(), "web");
  EXPECT_EQ(pod.metadata().namespace_(), kPodNamespace);
  EXPECT_EQ(pod.labels().at(kDockerLabel), "container");
  ASSERT_EQ(pod.port_mappings_size(), 2);
  const auto& c = out->container;
  EXPECT_THAT(std::vector<std::string>(c.args().begin(), c.args().end()),
              ElementsAre("echo", "hi"));
  EXPECT_TRUE(c.command().empty());  // the image's entrypoint stays
  ASSERT_EQ(c.envs_size(), 2);
  EXPECT_EQ(c.envs(1).value(), "x=y");
  EXPECT_EQ(c.working_dir(), "/w");
  EXPECT_TRUE(c.tty() && c.stdin() && c.stdin_once());
  ASSERT_EQ(c.mounts_size(), 2);
  EXPECT_EQ(c.mounts(0).host_path(), "/volumes/data/_data");
  EXPECT_TRUE(c.mounts(0).readonly());
  EXPECT_EQ(c.mounts(1).host_path(), "/srv");
  const auto& linux = c.linux();
  EXPECT_EQ(linux.resources().memory_limit_in_bytes(), 67108864);
  EXPECT_EQ(linux.resources().cpu_quota(), 50000);
  EXPECT_EQ(linux.resources().cpu_period(), 100000);
  EXPECT_EQ(linux.security_context().run_as_user().value(), 1000);
  EXPECT_EQ(linux.security_context().run_as_group().value(), 2000);
  EXPECT_THAT(
      std::vector<std::string>(linux.security_context().capabilities().add_capabilities().begin(),
                               linux.security_context().capabilities().add_capabilities().end()),
      ElementsAre("CAP_NET_ADMIN"));
  EXPECT_TRUE(linux.security_context().no_new_privs());
  // Docker's default seccomp profile applies unless asked otherwise.
  EXPECT_EQ(linux.security_context().seccomp().profile_type(),
            runtime::v1::SecurityProfile::RuntimeDefault);
  EXPECT_EQ(c.annotations().at(kNameAnnotation), "web");
}

TEST(TranslateTest, PortWithoutHostPortGetsAFreeOne) {
  nlohmann::json body = {{"Image", "busybox"},
                         {"HostConfig", {{"PortBindings", {{"80/tcp", {{{"HostPort", ""}}}}}}}}};
  absl::StatusOr<Translated> out = TranslateCreate(body, "web", Context());
  ASSERT_TRUE(out.ok()) << out.status();
  ASSERT_EQ(out->pod.port_mappings_size(), 1);
  EXPECT_EQ(out->pod.port_mappings(0).host_port(), 40000);
  EXPECT_EQ(out->pod.port_mappings(0).container_port(), 80);
}

TEST(TranslateTest, NetworksAreAnnotationsOrHostNamespaces) {
  nlohmann::json host = {{"Image", "b"}, {"HostConfig", {{"NetworkMode", "host"}}}};
  absl::StatusOr<Translated> on_host = TranslateCreate(host, "h", Context());
  ASSERT_TRUE(on_host.ok());
  EXPECT_EQ(on_host->pod.linux().security_context().namespace_options().network(),
            runtime::v1::NODE);
  nlohmann::json named = {{"Image", "b"}, {"HostConfig", {{"NetworkMode", "backend"}}}};
  absl::StatusOr<Translated> on_named = TranslateCreate(named, "n", Context());
  ASSERT_TRUE(on_named.ok());
  EXPECT_EQ(on_named->pod.annotations().at(runtime::kNetworkAnnotation), "backend");
  nlohmann::json none = {{"Image", "b"}, {"HostConfig", {{"NetworkMode", "none"}}}};
  absl::StatusOr<Translated> on_none = TranslateCreate(none, "x", Context());
  ASSERT_TRUE(on_none.ok());
  EXPECT_EQ(on_none->pod.annotations().at(runtime::kNetworkAnnotation), runtime::kNoNetwork);
  nlohmann::json missing = {{"Image", "b"}, {"HostConfig", {{"NetworkMode", "nope"}}}};
  EXPECT_TRUE(absl::IsNotFound(TranslateCreate(missing, "m", Context()).status()));
}

TEST(TranslateTest, WhatKapalCannotDoIsRefusedByName) {
  auto refused = [](const nlohmann::json& host_config) {
    nlohmann::json body = {{"Image", "b"}, {"HostConfig", host_config}};
    return TranslateCreate(body, "x", Context()).status();
  };
  absl::Status sometimes = refused({{"RestartPolicy", {{"Name", "sometimes"}}}});
  EXPECT_TRUE(absl::IsInvalidArgument(sometimes));
  EXPECT_THAT(sometimes.message(), HasSubstr("invalid restart policy 'sometimes'"));
  EXPECT_TRUE(refused({{"RestartPolicy", {{"Name", "always"}}}}).ok());
  EXPECT_TRUE(
      refused({{"RestartPolicy", {{"Name", "on-failure"}, {"MaximumRetryCount", 3}}}}).ok());
  EXPECT_THAT(refused({{"RestartPolicy", {{"Name", "always"}}}, {"AutoRemove", true}}).message(),
              HasSubstr("can't create 'AutoRemove' container with restart policy"));
  EXPECT_THAT(
      refused({{"RestartPolicy", {{"Name", "always"}, {"MaximumRetryCount", 2}}}}).message(),
      HasSubstr("maximum retry count cannot be used"));
  EXPECT_THAT(
      refused({{"RestartPolicy", {{"Name", "on-failure"}, {"MaximumRetryCount", -1}}}}).message(),
      HasSubstr("cannot be negative"));
  EXPECT_TRUE(absl::IsInvalidArgument(refused({{"Devices", {{{"PathOnHost", "/dev/x"}}}}})));
  EXPECT_TRUE(absl::IsInvalidArgument(refused({{"Binds", {"data:relative"}}})));
  EXPECT_TRUE(absl::IsInvalidArgument(refused({{"Binds", {"../x:/x"}}})));
  EXPECT_TRUE(absl::IsInvalidArgument(refused({{"SecurityOpt", {"apparmor=x"}}})));
  nlohmann::json bad_user = {{"Image", "b"}, {"User", "app:staff"}};
  EXPECT_THAT(TranslateCreate(bad_user, "x", Context()).status().message(),
              HasSubstr("numeric group"));
}

TEST(TranslateTest, ContainerNamesFollowDockersRule) {
  EXPECT_EQ(*CheckContainerName("/web-1.a_b"), "web-1.a_b");
  EXPECT_FALSE(CheckContainerName("a").ok());
  EXPECT_FALSE(CheckContainerName("no/slash").ok());
  EXPECT_FALSE(CheckContainerName("-lead").ok());
  EXPECT_TRUE(CheckContainerName(GenerateContainerName()).ok());
}

}  // namespace
}  // namespace kapal::docker
