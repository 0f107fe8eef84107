// kapald killed at each named crash point of RunPodSandbox (KAPAL_CRASH_POINT), then started
// again: nothing the cut-short call made may stay behind (infra process, IP allocation,
// namespace pins, pod files), and the node must go on running pods.
#include <signal.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/fixtures/pod_fixture.h"

namespace kapal::testing {
namespace {

// Live kapal-infra processes started for pods under STATE_DIR.
int InfraProcessesUnder(const std::string& state_dir) {
  int found = 0;
  absl::StatusOr<std::vector<std::string>> entries = base::ListDirectory("/proc");
  if (!entries.ok()) return 0;
  for (const std::string& pid : *entries) {
    absl::StatusOr<std::string> comm = base::ReadFile("/proc/" + pid + "/comm");
    absl::StatusOr<std::string> cmdline = base::ReadFile("/proc/" + pid + "/cmdline");
    if (comm.ok() && cmdline.ok() && absl::StartsWith(*comm, "kapal-infra") &&
        absl::StrContains(*cmdline, state_dir + "/pods/")) {
      ++found;
    }
  }
  return found;
}

class CrashTest : public PodFixture, public ::testing::WithParamInterface<const char*> {
 protected:
  // kapald killed at the parameter's crash point while it runs a pod of CONFIG, then started
  // again: the pod never was, nothing of it is left, and it runs after that.
  void RunPodCutShort(const PodSandboxConfig& config);
};

// A shared PID namespace, so the infra process is made too.
PodSandboxConfig WithSharedPid(PodSandboxConfig config) {
  config.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(POD);
  return config;
}

TEST_P(CrashTest, RunPodSandboxCutShortLeavesNothingAfterRestart) {
  RunPodCutShort(WithSharedPid(PodConfig("crash")));
}

// The same for a pod in a user namespace (its pin, and namespaces it owns).
TEST_P(CrashTest, UserNamespacePodCutShortLeavesNothingAfterRestart) {
  PodSandboxConfig config = WithSharedPid(PodConfig("crash-userns"));
  auto* userns = config.mutable_linux()
                     ->mutable_security_context()
                     ->mutable_namespace_options()
                     ->mutable_userns_options();
  for (auto* maps : {userns->mutable_uids(), userns->mutable_gids()}) {
    runtime::v1::IDMapping* map = maps->Add();
    map->set_host_id(300000);
    map->set_container_id(0);
    map->set_length(65536);
  }
  RunPodCutShort(config);
}

void CrashTest::RunPodCutShort(const PodSandboxConfig& config) {
  const std::string point = GetParam();
  kapald_->Process().Kill();
  ASSERT_TRUE(kapald_->Restart({{"KAPAL_CRASH_POINT", point}}).ok());
  stub_ = kapald_->RuntimeStub();
  absl::StatusOr<std::string> cut = RunPod(config);
  EXPECT_FALSE(cut.ok()) << "kapald did not crash at " << point;
  for (int i = 0; i < 200 && kapald_->Process().Running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_FALSE(kapald_->Process().Running()) << "kapald still runs after " << point;

  ASSERT_TRUE(kapald_->Restart().ok());
  stub_ = kapald_->RuntimeStub();
  ListPodSandboxResponse pods;
  ASSERT_TRUE(stub_->ListPodSandbox(Context().get(), {}, &pods).ok());
  // Not recorded: the pod never was, as far as any client knows.
  EXPECT_EQ(pods.items_size(), 0);
  EXPECT_EQ(InfraProcessesUnder(kapald_->StateDir()), 0);
  EXPECT_THAT(cni_->AllocatedAddresses(), ::testing::IsEmpty());
  EXPECT_EQ(MountsUnder(kapald_->StateDir() + "/pods"), 0);
  absl::StatusOr<std::vector<std::string>> dirs =
      base::ListDirectory(kapald_->StateDir() + "/pods");
  ASSERT_TRUE(dirs.ok());
  EXPECT_THAT(*dirs, ::testing::IsEmpty());

  // The same pod runs now, and goes away cleanly.
  absl::StatusOr<std::string> pod = RunPod(config);
  ASSERT_TRUE(pod.ok()) << pod.status();
  ASSERT_TRUE(RemovePod(*pod).ok());
  EXPECT_THAT(cni_->AllocatedAddresses(), ::testing::IsEmpty());
  EXPECT_EQ(InfraProcessesUnder(kapald_->StateDir()), 0);
}

INSTANTIATE_TEST_SUITE_P(Points, CrashTest,
                         ::testing::Values("runpod-after-namespaces", "runpod-after-infra",
                                           "runpod-after-cni-add", "runpod-before-record"));

}  // namespace
}  // namespace kapal::testing
