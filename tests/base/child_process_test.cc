#include "base/child_process.h"

#include <signal.h>

#include "base/files.h"
#include "base/temp_dir.h"
#include "gtest/gtest.h"

namespace kapal::base {
namespace {

TEST(ChildProcessTest, ReportsExitCode) {
  auto child = ChildProcess::Spawn({"/bin/sh", "-c", "exit 7"});
  ASSERT_TRUE(child.ok()) << child.status();
  auto exit = child->Wait(std::chrono::seconds(10));
  ASSERT_TRUE(exit.ok());
  EXPECT_TRUE(exit->exited);
  EXPECT_EQ(exit->exit_code, 7);
}

TEST(ChildProcessTest, MissingBinaryExits127) {
  auto child = ChildProcess::Spawn({"/nonexistent/binary"});
  ASSERT_TRUE(child.ok());
  auto exit = child->Wait(std::chrono::seconds(10));
  ASSERT_TRUE(exit.ok());
  EXPECT_EQ(exit->exit_code, 127);
}

TEST(ChildProcessTest, WaitTimesOutAndDestructorKillsTheWholeGroup) {
  auto dir = TempDir::Create("kapal-child");
  ASSERT_TRUE(dir.ok());
  std::string pid_file = dir->Join("grandchild.pid");
  pid_t grandchild = 0;
  {
    // The shell starts a grandchild in the same process group and records its pid.
    auto child =
        ChildProcess::Spawn({"/bin/sh", "-c", "sleep 60 & echo $! > " + pid_file + "; wait"});
    ASSERT_TRUE(child.ok());
    auto exit = child->Wait(std::chrono::milliseconds(300));
    EXPECT_EQ(exit.status().code(), absl::StatusCode::kDeadlineExceeded);
    auto text = ReadFile(pid_file);
    ASSERT_TRUE(text.ok());
    grandchild = std::stoi(*text);
    ASSERT_EQ(::kill(grandchild, 0), 0);
  }
  // The grandchild was killed with the group; it may linger as a zombie of init for a moment.
  for (int i = 0; i < 200 && ::kill(grandchild, 0) == 0; ++i) {
    auto stat = ReadFile("/proc/" + std::to_string(grandchild) + "/stat");
    if (!stat.ok() || stat->find(") Z") != std::string::npos) break;
    ::usleep(10000);
  }
  auto stat = ReadFile("/proc/" + std::to_string(grandchild) + "/stat");
  EXPECT_TRUE(!stat.ok() || stat->find(") Z") != std::string::npos) << *stat;
}

TEST(ChildProcessTest, SignalReachesTheChild) {
  auto child = ChildProcess::Spawn({"/bin/sleep", "60"});
  ASSERT_TRUE(child.ok());
  ASSERT_TRUE(child->Signal(SIGTERM).ok());
  auto exit = child->Wait(std::chrono::seconds(10));
  ASSERT_TRUE(exit.ok());
  EXPECT_FALSE(exit->exited);
  EXPECT_EQ(exit->signal, SIGTERM);
}

TEST(ChildProcessTest, EmptyArgvIsInvalid) {
  EXPECT_EQ(ChildProcess::Spawn({}).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kapal::base
