#include "runtime/cgroups.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "base/files.h"
#include "base/temp_dir.h"

namespace kapal::runtime {
namespace {

void Write(const base::TempDir& root, const std::string& path, const std::string& text) {
  std::string full = root.Join(path);
  ASSERT_TRUE(base::MakeDirectories(full.substr(0, full.rfind('/')), 0755).ok());
  ASSERT_TRUE(base::WriteFileAtomically(full, text).ok());
}

TEST(CgroupsTest, PathsForEachDriver) {
  Pod pod;
  pod.id = "p1";
  Cgroups cgroupfs(CgroupDriver::kCgroupfs, CgroupLayout::kHybrid, CgroupSupport{});
  EXPECT_EQ(cgroupfs.ContainerPath(pod, "c1"), "/kapal/p1/c1");
  EXPECT_EQ(cgroupfs.OomFile("/kapal/p1/c1"),
            "/sys/fs/cgroup/memory/kapal/p1/c1/memory.oom_control");
  pod.config.mutable_linux()->set_cgroup_parent("kubepods/besteffort/podu");
  EXPECT_EQ(cgroupfs.PodParent(pod), "/kubepods/besteffort/podu");

  Cgroups systemd(CgroupDriver::kSystemd, CgroupLayout::kV2, CgroupSupport{true, false, false});
  pod.config.mutable_linux()->set_cgroup_parent("kubepods-besteffort-podu.slice");
  std::string path = systemd.ContainerPath(pod, "c1");
  EXPECT_EQ(path, "kubepods-besteffort-podu.slice:kapal:c1");
  EXPECT_EQ(
      systemd.Directory(path),
      "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podu.slice/kapal-c1.scope");
  EXPECT_EQ(systemd.OomFile(path),
            "/sys/fs/cgroup/kubepods.slice/kubepods-besteffort.slice/"
            "kubepods-besteffort-podu.slice/kapal-c1.scope/memory.events");
}

TEST(CgroupsTest, ReadsV2Files) {
  absl::StatusOr<base::TempDir> root = base::TempDir::Create("cgroup-v2");
  ASSERT_TRUE(root.ok());
  Write(*root, "pod/c/cpu.stat",
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 9\nnr_throttled 2\n"
        "throttled_usec 4\n");
  Write(*root, "pod/c/memory.events", "low 0\nhigh 0\nmax 5\noom 1\noom_kill 1\n");
  Write(*root, "pod/c/pids.max", "max\n");
  Write(*root, "pod/c/memory.current", "10000\n");
  Write(*root, "pod/c/memory.max", "max\n");
  Write(*root, "pod/c/memory.stat",
        "anon 4000\nfile 3500\ninactive_file 3000\npgfault 7\npgmajfault 1\n");
  Write(*root, "pod/c/pids.current", "3\n");
  absl::StatusOr<CgroupSample> sample = ReadCgroup(CgroupLayout::kV2, "/pod/c", root->Path());
  ASSERT_TRUE(sample.ok()) << sample.status();
  EXPECT_EQ(sample->cpu_usage_ns, 1500000u);
  EXPECT_EQ(sample->memory_usage, 10000u);
  EXPECT_EQ(sample->memory_working_set, 7000u);
  EXPECT_EQ(sample->memory_rss, 4000u);
  EXPECT_EQ(sample->page_faults, 7u);
  EXPECT_EQ(sample->major_page_faults, 1u);
  EXPECT_FALSE(sample->memory_limit.has_value());  // "max"
  EXPECT_EQ(sample->processes, 3u);
  EXPECT_EQ(sample->cpu_user_ns, 1000000u);
  EXPECT_EQ(sample->cfs_throttled_periods, 2u);
  EXPECT_EQ(sample->cfs_throttled_ns, 4000u);
  EXPECT_EQ(sample->memory_cache, 3500u);
  EXPECT_EQ(sample->oom_kills, 1u);
  EXPECT_EQ(sample->memory_failcnt, 5u);
  EXPECT_FALSE(sample->processes_limit.has_value());  // "max"
  EXPECT_EQ(ReadCgroup(CgroupLayout::kV2, "/gone", root->Path()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST(CgroupsTest, ReadsV1ControllersIncludingCoMountedOnes) {
  absl::StatusOr<base::TempDir> root = base::TempDir::Create("cgroup-v1");
  ASSERT_TRUE(root.ok());
  Write(*root, "cpu,cpuacct/pod/c/cpuacct.usage", "2500\n");
  Write(*root, "memory/pod/c/memory.usage_in_bytes", "9000\n");
  Write(*root, "memory/pod/c/memory.limit_in_bytes", "67108864\n");
  Write(*root, "memory/pod/c/memory.stat",
        "rss 1\ntotal_rss 5000\ntotal_inactive_file 1000\ntotal_pgfault 11\ntotal_pgmajfault 2\n");
  Write(*root, "pids/pod/c/pids.current", "2\n");
  Write(*root, "pids/pod/c/pids.max", "128\n");
  Write(*root, "cpu,cpuacct/pod/c/cpuacct.stat", "user 3\nsystem 1\n");
  Write(*root, "cpu,cpuacct/pod/c/cpu.stat", "nr_periods 10\nnr_throttled 4\nthrottled_time 77\n");
  Write(*root, "memory/pod/c/memory.failcnt", "6\n");
  Write(*root, "memory/pod/c/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n");
  absl::StatusOr<CgroupSample> sample = ReadCgroup(CgroupLayout::kV1, "/pod/c", root->Path());
  ASSERT_TRUE(sample.ok()) << sample.status();
  EXPECT_EQ(sample->cpu_usage_ns, 2500u);
  EXPECT_EQ(sample->memory_working_set, 8000u);
  EXPECT_EQ(sample->memory_rss, 5000u);
  EXPECT_EQ(sample->memory_limit, 67108864u);
  EXPECT_EQ(sample->page_faults, 11u);
  EXPECT_EQ(sample->processes, 2u);
  EXPECT_EQ(sample->processes_limit, 128u);
  int64_t tick_ns = 1'000'000'000 / ::sysconf(_SC_CLK_TCK);
  EXPECT_EQ(sample->cpu_user_ns, static_cast<uint64_t>(3 * tick_ns));
  EXPECT_EQ(sample->cpu_system_ns, static_cast<uint64_t>(tick_ns));
  EXPECT_EQ(sample->cfs_periods, 10u);
  EXPECT_EQ(sample->cfs_throttled_ns, 77u);
  EXPECT_EQ(sample->memory_failcnt, 6u);
  EXPECT_EQ(sample->oom_kills, 2u);
}

}  // namespace
}  // namespace kapal::runtime
