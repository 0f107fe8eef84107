#include "runtime/networks.h"

#include <fstream>

#include "base/files.h"
#include "base/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kapal::runtime {
namespace {

using ::testing::HasSubstr;

class NetworksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<base::TempDir> dir = base::TempDir::Create("networks-test", "/tmp");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(*dir));
    // Someone else's default config on 10.89.0.0/24: a new network must not take it.
    std::ofstream(dir_->Join("10-default.conflist"))
        << R"({"cniVersion": "1.0.0", "name": "default-net", "plugins": [{"type": "bridge",
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.89.0.0/24"}]]}}]})";
    networks_.emplace(dir_->Path(), &journal_, logger_);
  }

  std::optional<base::TempDir> dir_;
  Journal journal_;
  base::Logger logger_{base::LogLevel::kError};
  std::optional<Networks> networks_;
};

TEST_F(NetworksTest, CreatePicksAFreeSubnetRefusesOverlapsAndRemovesOnlyItsOwn) {
  absl::StatusOr<Network> first = networks_->Create({"first", "", "", {}});
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->subnets.size(), 1u);
  EXPECT_EQ(first->subnets[0].first, "10.89.1.0/24");  // 10.89.0.0/24 is taken
  EXPECT_EQ(first->subnets[0].second, "10.89.1.1");
  EXPECT_TRUE(first->created_here);
  EXPECT_FALSE(first->is_default);
  EXPECT_EQ(first->driver, "bridge");

  absl::StatusOr<Network> overlapping = networks_->Create({"second", "10.89.1.128/25", "", {}});
  EXPECT_EQ(overlapping.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(overlapping.status().message(), HasSubstr("Pool overlaps"));
  EXPECT_EQ(networks_->Create({"first", "", "", {}}).status().code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(networks_->Create({"bad/name", "", "", {}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(networks_->Create({"x", "10.0.0.0/33", "", {}}).status().code(),
            absl::StatusCode::kInvalidArgument);

  std::vector<Network> all = networks_->List();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_TRUE(all[0].is_default);
  EXPECT_EQ(all[0].name, "default-net");
  EXPECT_EQ(networks_->Remove("default-net").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(networks_->Remove("first").ok());
  EXPECT_EQ(networks_->List().size(), 1u);
  EXPECT_EQ(networks_->Remove("first").code(), absl::StatusCode::kNotFound);

  std::vector<JournalEvent> told = journal_.Recent();
  ASSERT_EQ(told.size(), 2u);
  EXPECT_EQ(told[0].action, "create");
  EXPECT_EQ(told[1].action, "destroy");
  EXPECT_EQ(told[1].type, "network");
}

}  // namespace
}  // namespace kapal::runtime
