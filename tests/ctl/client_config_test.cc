#include "ctl/client_config.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kapal::ctl {
namespace {

TEST(CrictlYamlTest, ReadsCrictlKeys) {
  auto config = ParseCrictlYaml(R"(
runtime-endpoint: unix:///run/kapal/kapal.sock
image-endpoint: unix:///run/other.sock
timeout: 10
debug: true
pull-image-on-create: true
some-future-key: ignored
)",
                                "crictl.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->runtime_endpoint, "unix:///run/kapal/kapal.sock");
  EXPECT_EQ(config->image_endpoint, "unix:///run/other.sock");
  EXPECT_EQ(config->timeout, std::chrono::seconds(10));
  EXPECT_TRUE(config->debug);
  EXPECT_TRUE(config->pull_image_on_create);
  EXPECT_FALSE(config->disable_pull_on_run);
}

TEST(CrictlYamlTest, EmptyFileKeepsDefaults) {
  auto config = ParseCrictlYaml("", "crictl.yaml");
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->runtime_endpoint, kDefaultEndpoint);
  EXPECT_EQ(config->timeout, std::chrono::seconds(2));
}

TEST(CrictlYamlTest, BadValuesAreErrors) {
  EXPECT_FALSE(ParseCrictlYaml("debug: maybe", "c").ok());
  EXPECT_FALSE(ParseCrictlYaml("timeout: soon", "c").ok());
  EXPECT_FALSE(ParseCrictlYaml("- a list", "c").ok());
  EXPECT_FALSE(ParseCrictlYaml("key: [unclosed", "c").ok());
}

TEST(EndpointTest, UnixForms) {
  EXPECT_EQ(EndpointToTarget("unix:///run/kapal/kapal.sock").value_or(""),
            "unix:///run/kapal/kapal.sock");
  EXPECT_EQ(EndpointToTarget("/run/kapal/kapal.sock").value_or(""), "unix:///run/kapal/kapal.sock");
  EXPECT_EQ(EndpointToTarget("unix:/run/x.sock").value_or(""), "unix:///run/x.sock");
}

TEST(EndpointTest, OtherSchemesAndRelativePathsAreRejected) {
  EXPECT_THAT(EndpointToTarget("tcp://127.0.0.1:1234").status().message(),
              ::testing::HasSubstr("only unix sockets"));
  EXPECT_FALSE(EndpointToTarget("kapal.sock").ok());
  EXPECT_FALSE(EndpointToTarget("unix://").ok());
}

TEST(TimeoutTest, Durations) {
  EXPECT_EQ(ParseTimeout("2s").value(), std::chrono::seconds(2));
  EXPECT_EQ(ParseTimeout("500ms").value(), std::chrono::milliseconds(500));
  EXPECT_EQ(ParseTimeout("1m").value(), std::chrono::minutes(1));
  EXPECT_EQ(ParseTimeout("3").value(), std::chrono::seconds(3));
  EXPECT_EQ(ParseTimeout("1.5s").value(), std::chrono::milliseconds(1500));
  EXPECT_FALSE(ParseTimeout("fast").ok());
  EXPECT_FALSE(ParseTimeout("-1s").ok());
}

}  // namespace
}  // namespace kapal::ctl
