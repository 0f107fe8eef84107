// What kubelet relies on in a pod spec (the CRI validation suite checks the same), observed from
// inside real containers: users, capabilities, seccomp, no_new_privs, privileged, exec timeouts.
#include <signal.h>
#include <unistd.h>

#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fixtures/pod_fixture.h"

namespace kapal::testing {
namespace {

using ::testing::HasSubstr;

class ConformanceTest : public PodFixture {
 protected:
  void SetUp() override {
    PodFixture::SetUp();
    if (HasFatalFailure()) return;
    absl::StatusOr<std::string> pod = RunPod(PodConfig("conformance"));
    ASSERT_TRUE(pod.ok()) << pod.status();
    pod_ = *pod;
  }

  // Runs CONFIG to its end; its output (the CRI log's text) and exit code.
  std::pair<std::string, int> RunToEnd(const ContainerConfig& config) {
    std::string id = Run(pod_, config);
    ContainerStatus exited = WaitForExit(id);
    std::string text;
    for (const std::string& entry : LogEntries(exited.log_path())) {
      // "stdout F text"
      std::vector<std::string> parts = absl::StrSplit(entry, absl::MaxSplits(' ', 2));
      if (parts.size() == 3) absl::StrAppend(&text, parts[2], "\n");
    }
    return {text, exited.exit_code()};
  }

  // The value of FIELD in the container's /proc/self/status ("CapEff", "Seccomp", ...).
  static std::string StatusField(const std::string& status, const std::string& field) {
    for (absl::string_view line : absl::StrSplit(status, '\n')) {
      if (absl::StartsWith(line, field + ":")) {
        return std::string(absl::StripAsciiWhitespace(line.substr(field.size() + 1)));
      }
    }
    return "";
  }

  static std::string OwnStatusField(const std::string& field) {
    absl::StatusOr<std::string> status = base::ReadFile("/proc/self/status");
    return status.ok() ? StatusField(*status, field) : "";
  }

  std::string pod_;
};

TEST_F(ConformanceTest, NonRootUserRunsFromARootOfTheImagesMode) {
  ContainerConfig config = ContainerWith(
      "nonroot",
      {"sh", "-c",
       "id -u; id -g; /bin/busybox stat -c %a /; cat /bin/busybox >/dev/null && echo read"});
  config.mutable_linux()->mutable_security_context()->mutable_run_as_user()->set_value(1000);
  config.mutable_linux()->mutable_security_context()->mutable_run_as_group()->set_value(3000);
  auto [output, code] = RunToEnd(config);
  EXPECT_EQ(code, 0) << output;
  EXPECT_EQ(output, "1000\n3000\n755\nread\n");
}

TEST_F(ConformanceTest, RunAsGroupWithoutAUserIsRefused) {
  ContainerConfig config = ContainerWith("group-only", {"true"});
  config.mutable_linux()->mutable_security_context()->mutable_run_as_group()->set_value(3000);
  std::string id;
  grpc::Status status = Create(pod_, config, &id);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("run_as_user"));
  EXPECT_TRUE(Containers().empty());
}

TEST_F(ConformanceTest, PrivilegedGetsWhatKapaldHoldsAndAWritableSys) {
  ContainerConfig config =
      ContainerWith("privileged", {"sh", "-c", "cat /proc/self/status; cat /proc/mounts"});
  config.mutable_linux()->mutable_security_context()->set_privileged(true);
  auto [output, code] = RunToEnd(config);
  ASSERT_EQ(code, 0) << output;
  // The test runs as root like kapald: the same capabilities, even where the bounding set lacks
  // some (runc refuses to grant what it does not hold).
  EXPECT_EQ(StatusField(output, "CapEff"), OwnStatusField("CapEff"));
  EXPECT_EQ(StatusField(output, "CapBnd"), OwnStatusField("CapBnd"));
  EXPECT_EQ(StatusField(output, "Seccomp"), "0");
  EXPECT_THAT(output, HasSubstr("sysfs /sys sysfs rw"));
}

TEST_F(ConformanceTest, AddingAllCapabilitiesGivesWhatKapaldHolds) {
  ContainerConfig config = ContainerWith("all-caps", {"cat", "/proc/self/status"});
  config.mutable_linux()->mutable_security_context()->mutable_capabilities()->add_add_capabilities(
      "ALL");
  auto [output, code] = RunToEnd(config);
  ASSERT_EQ(code, 0) << output;
  EXPECT_EQ(StatusField(output, "CapEff"), OwnStatusField("CapEff"));
}

TEST_F(ConformanceTest, SeccompIsUnconfinedUnlessAskedAndLocalhostProfilesApply) {
  auto [unset, unset_code] = RunToEnd(ContainerWith("unset", {"cat", "/proc/self/status"}));
  ASSERT_EQ(unset_code, 0);
  EXPECT_EQ(StatusField(unset, "Seccomp"), "0");

  ContainerConfig runtime_default = ContainerWith("default", {"cat", "/proc/self/status"});
  runtime_default.mutable_linux()->mutable_security_context()->mutable_seccomp()->set_profile_type(
      SecurityProfile::RuntimeDefault);
  auto [filtered, filtered_code] = RunToEnd(runtime_default);
  ASSERT_EQ(filtered_code, 0) << filtered;
  EXPECT_EQ(StatusField(filtered, "Seccomp"), "2");

  std::string profile = kapald_->StateDir() + "/no-chmod.json";
  ASSERT_TRUE(base::WriteFileAtomically(
                  profile,
                  R"({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["chmod",
                      "fchmodat", "fchmodat2"], "action": "SCMP_ACT_ERRNO"}]})")
                  .ok());
  ContainerConfig localhost = ContainerWith("localhost", {"/bin/busybox", "chmod", "700", "/tmp"});
  localhost.mutable_linux()->mutable_security_context()->set_seccomp_profile_path("localhost/" +
                                                                                  profile);
  auto [blocked, blocked_code] = RunToEnd(localhost);
  EXPECT_NE(blocked_code, 0) << "chmod was not blocked: " << blocked;

  ContainerConfig bad = ContainerWith("bad-profile", {"true"});
  bad.mutable_linux()->mutable_security_context()->set_seccomp_profile_path(profile);
  std::string id;
  EXPECT_EQ(Create(pod_, bad, &id).error_code(), grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ConformanceTest, NoNewPrivilegesWhenAsked) {
  ContainerConfig config = ContainerWith("nnp", {"cat", "/proc/self/status"});
  config.mutable_linux()->mutable_security_context()->set_no_new_privs(true);
  auto [output, code] = RunToEnd(config);
  ASSERT_EQ(code, 0);
  EXPECT_EQ(StatusField(output, "NoNewPrivs"), "1");
  auto [plain, plain_code] = RunToEnd(ContainerWith("plain", {"cat", "/proc/self/status"}));
  ASSERT_EQ(plain_code, 0);
  EXPECT_EQ(StatusField(plain, "NoNewPrivs"), "0");
}

// Host processes (not zombies) whose command line is exactly ARGV.
int LiveProcessesRunning(const std::string& argv) {
  int found = 0;
  absl::StatusOr<std::vector<std::string>> entries = base::ListDirectory("/proc");
  if (!entries.ok()) return 0;
  for (const std::string& name : *entries) {
    int pid = 0;
    if (!absl::SimpleAtoi(name, &pid)) continue;
    absl::StatusOr<std::string> cmdline = base::ReadFile("/proc/" + name + "/cmdline");
    absl::StatusOr<std::string> stat = base::ReadFile("/proc/" + name + "/stat");
    if (!cmdline.ok() || !stat.ok()) continue;
    std::string command = *cmdline;
    std::replace(command.begin(), command.end(), '\0', ' ');
    if (absl::StripTrailingAsciiWhitespace(command) != argv) continue;
    size_t close = stat->rfind(')');
    if (close != std::string::npos && close + 2 < stat->size() && (*stat)[close + 2] != 'Z') {
      ++found;
    }
  }
  return found;
}

TEST_F(ConformanceTest, ExecTimeoutEndsTheWholeProcessTree) {
  std::string id = Run(pod_, ContainerWith("long", {"sleep", "4321"}));
  ExecSyncResponse response;
  grpc::Status status =
      Exec(id, {"sh", "-c", "sleep 4322 & sleep 4323; echo never"}, &response, /*timeout=*/1);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_EQ(LiveProcessesRunning("sleep 4322"), 0);
  EXPECT_EQ(LiveProcessesRunning("sleep 4323"), 0);
  EXPECT_EQ(LiveProcessesRunning("sh -c sleep 4322 & sleep 4323; echo never"), 0);
  EXPECT_EQ(LiveProcessesRunning("sleep 4321"), 1);  // the container itself lives on
}

TEST_F(ConformanceTest, StatsOfAContainerAndItsPod) {
  ContainerConfig config = ContainerWith(
      "busy", {"sh", "-c",
               "i=0; while [ $i -lt 2000 ]; do echo x >> /tmp/f; i=$((i+1)); done; sleep 4400"});
  (*config.mutable_labels())["tier"] = "stats";
  std::string id = Run(pod_, config);
  // The loop has written its 4000 bytes when the file stops growing; wait for that, bounded.
  ContainerStatsResponse response;
  for (int i = 0; i < 100; ++i) {
    ContainerStatsRequest request;
    request.set_container_id(id);
    ASSERT_TRUE(stub_->ContainerStats(Context().get(), request, &response).ok());
    if (response.stats().writable_layer().used_bytes().value() >= 4000) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const ContainerStats& stats = response.stats();
  EXPECT_EQ(stats.attributes().id(), id);
  EXPECT_EQ(stats.attributes().metadata().name(), "busy");
  EXPECT_GT(stats.cpu().usage_core_nano_seconds().value(), 0u);
  EXPECT_GT(stats.memory().working_set_bytes().value(), 0u);
  EXPECT_GT(stats.memory().usage_bytes().value(), 0u);
  EXPECT_GT(stats.memory().page_faults().value(), 0u);
  EXPECT_GE(stats.writable_layer().used_bytes().value(), 4000u);
  EXPECT_GE(stats.writable_layer().inodes_used().value(), 1u);

  ListContainerStatsRequest by_pod;
  by_pod.mutable_filter()->set_pod_sandbox_id(pod_);
  ListContainerStatsResponse listed;
  ASSERT_TRUE(stub_->ListContainerStats(Context().get(), by_pod, &listed).ok());
  ASSERT_EQ(listed.stats_size(), 1);
  ListContainerStatsRequest by_label;
  (*by_label.mutable_filter()->mutable_label_selector())["tier"] = "other";
  ASSERT_TRUE(stub_->ListContainerStats(Context().get(), by_label, &listed).ok());
  EXPECT_EQ(listed.stats_size(), 0);

  PodSandboxStatsRequest pod_request;
  pod_request.set_pod_sandbox_id(pod_);
  PodSandboxStatsResponse pod_stats;
  ASSERT_TRUE(stub_->PodSandboxStats(Context().get(), pod_request, &pod_stats).ok());
  const LinuxPodSandboxStats& linux = pod_stats.stats().linux();
  EXPECT_EQ(pod_stats.stats().attributes().id(), pod_);
  EXPECT_GT(linux.cpu().usage_core_nano_seconds().value(), 0u);
  EXPECT_GE(linux.process().process_count().value(), 1u);
  EXPECT_EQ(linux.network().default_interface().name(), "eth0");
  ASSERT_EQ(linux.containers_size(), 1);
  EXPECT_EQ(linux.containers(0).attributes().id(), id);

  ListPodSandboxStatsResponse pods;
  ASSERT_TRUE(stub_->ListPodSandboxStats(Context().get(), {}, &pods).ok());
  EXPECT_EQ(pods.stats_size(), 1);
}

TEST_F(ConformanceTest, UpdatedResourcesReachTheCgroupAndTheStatus) {
  ContainerConfig config = ContainerWith("resized", {"sleep", "4401"});
  config.mutable_linux()->mutable_resources()->set_memory_limit_in_bytes(64 << 20);
  std::string id = Run(pod_, config);
  UpdateContainerResourcesRequest request;
  request.set_container_id(id);
  request.mutable_linux()->set_memory_limit_in_bytes(128 << 20);
  request.mutable_linux()->set_cpu_period(100000);
  request.mutable_linux()->set_cpu_quota(50000);
  UpdateContainerResourcesResponse response;
  grpc::Status status = stub_->UpdateContainerResources(Context().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::string dir = absl::StrCat("/kapal/", pod_, "/", id);
  absl::StatusOr<std::string> limit =
      base::ReadFile("/sys/fs/cgroup/memory" + dir + "/memory.limit_in_bytes");
  if (!limit.ok()) limit = base::ReadFile("/sys/fs/cgroup" + dir + "/memory.max");  // v2
  ASSERT_TRUE(limit.ok()) << limit.status();
  EXPECT_EQ(absl::StripAsciiWhitespace(*limit), std::to_string(128 << 20));
  ContainerStatus after = StatusOf(id);
  EXPECT_EQ(after.resources().linux().memory_limit_in_bytes(), 128 << 20);
  EXPECT_EQ(after.resources().linux().cpu_quota(), 50000);

  request.mutable_linux()->set_cpu_quota(-1);
  EXPECT_EQ(stub_->UpdateContainerResources(Context().get(), request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_F(ConformanceTest, AContainerWhoseShimDiedIsEndedAndSaysWhy) {
  std::string id = Run(pod_, ContainerWith("orphan", {"sleep", "4402"}));
  ContainerStatusRequest request;
  request.set_container_id(id);
  request.set_verbose(true);
  ContainerStatusResponse verbose;
  ASSERT_TRUE(stub_->ContainerStatus(Context().get(), request, &verbose).ok());
  int shim = nlohmann::json::parse(verbose.info().at("info"))["shimPid"].get<int>();
  ASSERT_GT(shim, 0);
  ASSERT_EQ(::kill(shim, SIGKILL), 0);
  ContainerStatus exited = WaitForExit(id);
  EXPECT_EQ(exited.exit_code(), 137);
  EXPECT_THAT(exited.message(), HasSubstr("kapal-shim"));
  for (int i = 0; i < 100 && LiveProcessesRunning("sleep 4402") > 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(LiveProcessesRunning("sleep 4402"), 0);
}

TEST_F(ConformanceTest, RuntimeErrorsAreOneLineWithTheirCode) {
  // runc finds the command missing at create (runc 1.1) or at start (others): either way the
  // client gets the one line that says so, as INVALID_ARGUMENT, without runc's log format.
  std::string id;
  grpc::Status failed = Create(pod_, ContainerWith("missing", {"/no/such/binary"}), &id);
  if (failed.ok()) failed = Start(id);
  EXPECT_EQ(failed.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << failed.error_message();
  EXPECT_THAT(failed.error_message(), HasSubstr("/no/such/binary"));
  EXPECT_THAT(failed.error_message(), ::testing::Not(HasSubstr("level=")));
  EXPECT_THAT(failed.error_message(), ::testing::Not(HasSubstr("time=")));
}

TEST_F(ConformanceTest, KapalctlStatsStatspAndUpdate) {
  std::string id = Run(pod_, ContainerWith("watched", {"sleep", "4403"}));
  CommandResult stats = kapald_->Kapalctl({"stats"});
  ASSERT_EQ(stats.exit_code, 0) << stats.err;
  EXPECT_THAT(stats.out, HasSubstr("CPU %"));
  EXPECT_THAT(stats.out, HasSubstr(id.substr(0, 13)));
  EXPECT_THAT(stats.out, HasSubstr("watched"));
  CommandResult json = kapald_->Kapalctl({"stats", "-o", "json", id.substr(0, 8)});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  nlohmann::json document = nlohmann::json::parse(json.out);
  ASSERT_EQ(document["stats"].size(), 1u);
  EXPECT_EQ(document["stats"][0]["attributes"]["id"], id);
  CommandResult pods = kapald_->Kapalctl({"statsp"});
  ASSERT_EQ(pods.exit_code, 0) << pods.err;
  EXPECT_THAT(pods.out, HasSubstr("conformance"));
  CommandResult update = kapald_->Kapalctl({"update", "--memory", "134217728", id});
  ASSERT_EQ(update.exit_code, 0) << update.err;
  EXPECT_EQ(update.out, id + "\n");
  EXPECT_EQ(StatusOf(id).resources().linux().memory_limit_in_bytes(), 134217728);
}

TEST_F(ConformanceTest, PodAndContainerCreationIsTimedPhaseByPhase) {
  Run(pod_, ContainerWith("timed", {"true"}));
  for (const char* phase : {"checks", "files", "namespaces", "cni_add", "record"}) {
    EXPECT_GE(
        kapald_->ScrapeValue("kapal_runtime_phase_seconds_count",
                             {"operation=\"run_pod\"", absl::StrCat("phase=\"", phase, "\"")}),
        1)
        << phase;
  }
  for (const char* phase : {"checks", "snapshot", "mount", "spec", "record", "runtime_create"}) {
    EXPECT_GE(kapald_->ScrapeValue(
                  "kapal_runtime_phase_seconds_count",
                  {"operation=\"create_container\"", absl::StrCat("phase=\"", phase, "\"")}),
              1)
        << phase;
  }
}

// The value of an unlabelled series NAME in SCRAPE (-1 when absent).
double UnlabelledValue(const std::string& scrape, const std::string& name) {
  for (absl::string_view line : absl::StrSplit(scrape, '\n')) {
    if (!absl::StartsWith(line, name + " ")) continue;
    double value = 0;
    if (absl::SimpleAtod(line.substr(name.size() + 1), &value)) return value;
  }
  return -1;
}

// The node's pods and containers in Prometheus: by state at scrape time, starts and exits as
// they happen.
TEST_F(ConformanceTest, PodsAndContainersAreCountedInMetrics) {
  std::string done = Run(pod_, ContainerWith("done", {"true"}));
  EXPECT_EQ(WaitForExit(done).exit_code(), 0);
  Run(pod_, ContainerWith("failing", {"sh", "-c", "exit 2"}));
  ContainerConfig again = ContainerWith("done", {"true"});
  again.mutable_metadata()->set_attempt(1);  // kubelet's restart of "done"
  std::string sleeper = Run(pod_, ContainerWith("sleeper", {"sleep", "100"}));
  EXPECT_EQ(WaitForExit(Run(pod_, again)).exit_code(), 0);
  for (int i = 0;
       i < 100 && kapald_->ScrapeValue("kapal_container_exits_total", {"reason=\"Error\""}) < 1;
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(kapald_->ScrapeValue("kapal_pods", {"state=\"ready\""}), 1);
  EXPECT_EQ(kapald_->ScrapeValue("kapal_containers", {"state=\"running\""}), 1);
  EXPECT_EQ(kapald_->ScrapeValue("kapal_containers", {"state=\"exited\""}), 3);
  EXPECT_EQ(kapald_->ScrapeValue("kapal_container_exits_total", {"reason=\"Completed\""}), 2);
  EXPECT_EQ(kapald_->ScrapeValue("kapal_container_exits_total", {"reason=\"Error\""}), 1);
  std::string scrape;
  (void)kapald_->ScrapeValue("kapal_pods", {}, &scrape);
  EXPECT_EQ(UnlabelledValue(scrape, "kapal_container_starts_total"), 4) << scrape;
  EXPECT_EQ(UnlabelledValue(scrape, "kapal_container_restarts_total"), 1) << scrape;
  EXPECT_EQ(UnlabelledValue(scrape, "kapal_events_dropped_total"), 0) << scrape;
  // Only the running container's shim stays (a shim ends a moment after its container's exit
  // record).
  for (int i = 0; i < 100 && UnlabelledValue(scrape, "kapal_shims_alive") != 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    (void)kapald_->ScrapeValue("kapal_pods", {}, &scrape);
  }
  EXPECT_EQ(UnlabelledValue(scrape, "kapal_shims_alive"), 1) << scrape;
  StopPod(pod_);
  EXPECT_EQ(kapald_->ScrapeValue("kapal_pods", {"state=\"notready\""}), 1);
  EXPECT_EQ(kapald_->ScrapeValue("kapal_containers", {"state=\"running\""}, &scrape), 0) << scrape;
  (void)sleeper;
}

}  // namespace
}  // namespace kapal::testing
