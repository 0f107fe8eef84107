#include "runtime/readiness.h"

#include <sys/stat.h>

#include "base/files.h"
#include "base/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kapal::runtime {
namespace {

using ::testing::HasSubstr;

class NetworkReadyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = base::TempDir::Create("kapal-cni");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(*dir));
    ASSERT_TRUE(base::MakeDirectories(dir_->Join("net.d"), 0755).ok());
    ASSERT_TRUE(base::MakeDirectories(dir_->Join("bin"), 0755).ok());
    config_.cni_conf_dir = dir_->Join("net.d");
    config_.cni_bin_dirs = {dir_->Join("empty"), dir_->Join("bin")};
  }
  void Plugin(const std::string& name) {
    ASSERT_TRUE(base::WriteFileAtomically(dir_->Join("bin/" + name), "#!/bin/sh\n", 0755).ok());
  }
  void NetConf(const std::string& name, const std::string& json) {
    ASSERT_TRUE(base::WriteFileAtomically(dir_->Join("net.d/" + name), json).ok());
  }
  std::optional<base::TempDir> dir_;
  Options config_;
};

TEST_F(NetworkReadyTest, NoConfigIsNotReadyWithTheDirInTheMessage) {
  Condition condition = CheckNetworkReady(config_);
  EXPECT_FALSE(condition.ready);
  EXPECT_EQ(condition.reason, "NetworkPluginNotReady");
  EXPECT_THAT(condition.message, HasSubstr("cni config uninitialized"));
  EXPECT_THAT(condition.message, HasSubstr(config_.cni_conf_dir));
}

TEST_F(NetworkReadyTest, ConflistWithAllPluginsIsReady) {
  Plugin("bridge");
  Plugin("portmap");
  NetConf(
      "10-kapal.conflist",
      R"({"cniVersion":"1.0.0","name":"kapal","plugins":[{"type":"bridge"},{"type":"portmap"}]})");
  Condition condition = CheckNetworkReady(config_);
  EXPECT_TRUE(condition.ready) << condition.message;
}

TEST_F(NetworkReadyTest, MissingPluginBinaryIsNamed) {
  Plugin("bridge");
  NetConf("10-kapal.conflist",
          R"({"name":"kapal","plugins":[{"type":"bridge"},{"type":"portmap"}]})");
  Condition condition = CheckNetworkReady(config_);
  EXPECT_FALSE(condition.ready);
  EXPECT_THAT(condition.message, HasSubstr("\"portmap\""));
}

TEST_F(NetworkReadyTest, FirstFileInNameOrderDecides) {
  Plugin("bridge");
  NetConf("20-good.conf", R"({"name":"good","type":"bridge"})");
  NetConf("10-broken.conf", "{not json");
  Condition condition = CheckNetworkReady(config_);
  EXPECT_FALSE(condition.ready);
  EXPECT_THAT(condition.message, HasSubstr("10-broken.conf"));
}

TEST_F(NetworkReadyTest, PluginTypeWithAPathIsRejected) {
  NetConf("10-evil.conf", R"({"name":"evil","type":"../../../bin/sh"})");
  Condition condition = CheckNetworkReady(config_);
  EXPECT_FALSE(condition.ready);
  EXPECT_THAT(condition.message, HasSubstr("not a plain file name"));
}

TEST_F(NetworkReadyTest, ConfigWithoutNameIsInvalid) {
  Plugin("bridge");
  NetConf("10-x.conf", R"({"type":"bridge"})");
  EXPECT_THAT(CheckNetworkReady(config_).message, HasSubstr("has no \"name\""));
}

TEST(RuntimeReadyTest, MissingBinaryIsNotReady) {
  Options config;
  config.runtimes["runc"].binary = "/nonexistent/runc";
  Condition condition = CheckRuntimeReady(config);
  EXPECT_FALSE(condition.ready);
  EXPECT_EQ(condition.reason, "OCIRuntimeNotFound");
  EXPECT_THAT(condition.message, HasSubstr("runtime.handlers.runc.binary"));
}

TEST(RuntimeReadyTest, ExecutableBinaryIsReady) {
  Options config;
  config.runtimes["runc"].binary = "/bin/sh";
  EXPECT_TRUE(CheckRuntimeReady(config).ready);
}

}  // namespace
}  // namespace kapal::runtime
