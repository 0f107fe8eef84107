#include "runtime/host_facts.h"

#include "base/files.h"
#include "base/temp_dir.h"
#include "gtest/gtest.h"

namespace kapal::runtime {
namespace {

class HostFactsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = base::TempDir::Create("kapal-host");
    ASSERT_TRUE(dir.ok());
    root_.emplace(std::move(*dir));
  }
  void Touch(const std::string& relative, const std::string& content = "") {
    std::string path = root_->Join(relative);
    ASSERT_TRUE(base::MakeDirectories(path.substr(0, path.rfind('/')), 0755).ok());
    ASSERT_TRUE(base::WriteFileAtomically(path, content).ok());
  }
  std::optional<base::TempDir> root_;
};

TEST_F(HostFactsTest, CgroupV1) {
  Touch("sys/fs/cgroup/memory/tasks");
  EXPECT_EQ(DetectHostFacts(root_->Path()).cgroup_layout, CgroupLayout::kV1);
}

TEST_F(HostFactsTest, CgroupHybrid) {
  Touch("sys/fs/cgroup/unified/cgroup.controllers");
  EXPECT_EQ(DetectHostFacts(root_->Path()).cgroup_layout, CgroupLayout::kHybrid);
}

TEST_F(HostFactsTest, CgroupV2) {
  Touch("sys/fs/cgroup/cgroup.controllers", "cpu memory pids");
  EXPECT_EQ(DetectHostFacts(root_->Path()).cgroup_layout, CgroupLayout::kV2);
}

TEST_F(HostFactsTest, V1ControllersAreThoseMounted) {
  Touch("sys/fs/cgroup/memory/cgroup.procs");
  CgroupSupport bare = DetectHostFacts(root_->Path()).cgroups;
  EXPECT_FALSE(bare.v2);
  EXPECT_FALSE(bare.hugetlb);
  EXPECT_FALSE(bare.swap);
  Touch("sys/fs/cgroup/memory/memory.memsw.limit_in_bytes");
  Touch("sys/fs/cgroup/hugetlb,perf_event/cgroup.procs");
  CgroupSupport full = DetectHostFacts(root_->Path()).cgroups;
  EXPECT_TRUE(full.hugetlb);
  EXPECT_TRUE(full.swap);
}

TEST_F(HostFactsTest, V2ControllersAreTheRootsOnes) {
  Touch("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory pids\n");
  CgroupSupport bare = DetectHostFacts(root_->Path()).cgroups;
  EXPECT_TRUE(bare.v2);
  EXPECT_FALSE(bare.hugetlb);
  EXPECT_FALSE(bare.swap);
  Touch("sys/fs/cgroup/cgroup.controllers", "cpuset cpu io memory hugetlb pids\n");
  Touch("sys/fs/cgroup/init.scope/memory.swap.max", "max\n");
  CgroupSupport full = DetectHostFacts(root_->Path()).cgroups;
  EXPECT_TRUE(full.hugetlb);
  EXPECT_TRUE(full.swap);
}

TEST_F(HostFactsTest, SystemdAndIpForward) {
  HostFacts bare = DetectHostFacts(root_->Path());
  EXPECT_FALSE(bare.systemd_running);
  EXPECT_FALSE(bare.ip_forward);
  ASSERT_TRUE(base::MakeDirectories(root_->Join("run/systemd/system"), 0755).ok());
  Touch("proc/sys/net/ipv4/ip_forward", "1\n");
  Touch("proc/sys/kernel/osrelease", "6.1.0-test\n");
  HostFacts facts = DetectHostFacts(root_->Path());
  EXPECT_TRUE(facts.systemd_running);
  EXPECT_TRUE(facts.ip_forward);
  EXPECT_EQ(facts.kernel_release, "6.1.0-test");
}

TEST(CgroupDriverTest, AutoFollowsSystemd) {
  HostFacts with_systemd;
  with_systemd.systemd_running = true;
  HostFacts without;
  EXPECT_EQ(ResolveCgroupDriver(CgroupDriverSetting::kAuto, with_systemd), CgroupDriver::kSystemd);
  EXPECT_EQ(ResolveCgroupDriver(CgroupDriverSetting::kAuto, without), CgroupDriver::kCgroupfs);
  EXPECT_EQ(ResolveCgroupDriver(CgroupDriverSetting::kCgroupfs, with_systemd),
            CgroupDriver::kCgroupfs);
  EXPECT_EQ(ResolveCgroupDriver(CgroupDriverSetting::kSystemd, without), CgroupDriver::kSystemd);
}

TEST(HostFactsRealTest, ThisHostIsDetected) {
  HostFacts facts = DetectHostFacts();
  EXPECT_FALSE(facts.kernel_release.empty());
}

}  // namespace
}  // namespace kapal::runtime
