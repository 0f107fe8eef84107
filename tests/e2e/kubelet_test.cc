// A real kubelet (v1.36, ../shared/kubelet) runs the static pods of tests/e2e/kubelet-pods on
// kapald through ../shared/critest/run.sh --kubelet, and this test reads what kubelet itself
// reports about them while they run: its /pods, /containerLogs, /stats/summary and /run. A gate
// pod (an init container waiting for a file of this test) keeps run.sh from tearing the node
// down before the checks are done; opening the gate lets it finish and count the pods.
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/child_process.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace kapal::testing {
namespace {

using ::testing::HasSubstr;

const std::string kShared = KAPAL_SOURCE_DIR "/../shared";
const std::string kKubeletApi = "https://127.0.0.1:10250";
constexpr auto kPodsTimeout = std::chrono::seconds(240);
constexpr char kGate[] =
    R"(# Written by the kubelet test: not running until the test opens the gate.
apiVersion: v1
kind: Pod
metadata: {name: gate, namespace: default}
spec:
  initContainers:
  - name: wait
    image: registry.k8s.io/e2e-test-images/busybox:1.29-2
    command: ["sh", "-c", "until [ -e /gate/open ]; do sleep 1; done"]
    volumeMounts: [{name: gate, mountPath: /gate}]
  containers:
  - name: main
    image: registry.k8s.io/e2e-test-images/busybox:1.29-2
    command: ["sh", "-c", "sleep 3600"]
  volumes: [{name: gate, hostPath: {path: @GATE@, type: Directory}}]
)";

// The output of a finished command (curl), or "" when it failed.
std::string OutputOf(const std::vector<std::string>& argv) {
  absl::StatusOr<base::CommandResult> ran = base::RunCommand(argv, "", std::chrono::seconds(20));
  return ran.ok() && ran->Succeeded() ? ran->output : "";
}

std::string KubeletGet(const std::string& path) {
  return OutputOf({"curl", "-sk", "--max-time", "10", kKubeletApi + path});
}

// kubelet's feature gates for one run (run.sh's KUBELET_GATES): the default run, and one where
// kubelet takes pod changes from kapald's event stream (EventedPLEG) and its stats and
// /metrics/cadvisor from kapald's CRI stats and metrics (PodAndContainerStatsFromCRI).
struct KubeletGates {
  const char* name;
  const char* gates;
};
// How gtest (and so ctest's test names) shows a run: by its name, not its bytes.
void PrintTo(const KubeletGates& gates, std::ostream* out) { *out << gates.name; }

class KubeletTest : public ::testing::TestWithParam<KubeletGates> {
 protected:
  void SetUp() override {
    if (::access((kShared + "/kubelet/bin/kubelet").c_str(), X_OK) != 0 ||
        ::access((kShared + "/critest/run.sh").c_str(), X_OK) != 0) {
      GTEST_SKIP() << "../shared/kubelet is not beside this checkout: kubelet test skipped";
    }
    absl::StatusOr<base::TempDir> dir = base::TempDir::Create("kapal-kubelet", "/var/tmp");
    ASSERT_TRUE(dir.ok()) << dir.status();
    dir_.emplace(std::move(*dir));
    ASSERT_EQ(::chmod(dir_->Path().c_str(), 0755), 0);
    manifests_ = dir_->Join("manifests");
    gate_ = dir_->Join("gate");
    ASSERT_TRUE(base::MakeDirectories(manifests_, 0755).ok());
    ASSERT_TRUE(base::MakeDirectories(gate_, 0755).ok());
    absl::StatusOr<std::vector<std::string>> names =
        base::ListDirectory(KAPAL_SOURCE_DIR "/tests/e2e/kubelet-pods");
    ASSERT_TRUE(names.ok()) << names.status();
    for (const std::string& name : *names) {
      if (!absl::EndsWith(name, ".yaml")) continue;
      absl::StatusOr<std::string> text =
          base::ReadFile(absl::StrCat(KAPAL_SOURCE_DIR "/tests/e2e/kubelet-pods/", name));
      ASSERT_TRUE(text.ok());
      ASSERT_TRUE(base::WriteFileAtomically(absl::StrCat(manifests_, "/", name), *text, 0644).ok());
      pods_.insert(std::string(absl::StripSuffix(name, ".yaml")) + "-kapal-node");
    }
    std::string gate = kGate;
    gate.replace(gate.find("@GATE@"), 6, gate_);
    ASSERT_TRUE(base::WriteFileAtomically(manifests_ + "/gate.yaml", gate, 0644).ok());

    ASSERT_NO_FATAL_FAILURE(StartHarness());
  }

  // Starts run.sh and waits until it has started kapald. run.sh's own steps before that (its
  // registry, the 20 test image pushes, its lock) can fail for reasons of their own: its pushes
  // of three tags of one repository at once race in docker-registry 2.8, which writes a tag's
  // link file in place, so a concurrent manifest upload can read it empty ("digest invalid",
  // once in 30 rounds measured here). Such a run is started again, up to 3 attempts; from kapald's
  // start on, nothing is retried.
  void StartHarness() {
    const std::string log_path = dir_->Join("run.log");
    for (int attempt = 1;; ++attempt) {
      base::ChildOptions options;
      options.stdout_path = log_path;
      options.stderr_path = log_path;
      options.environment["KUBELET_WAIT"] = "400";
      if (*GetParam().gates != '\0') options.environment["KUBELET_GATES"] = GetParam().gates;
      absl::StatusOr<base::ChildProcess> harness =
          base::ChildProcess::Spawn({kShared + "/critest/run.sh", "--kapald", KAPALD_BINARY,
                                     "--kubelet", manifests_, "--out", dir_->Join("out")},
                                    options);
      ASSERT_TRUE(harness.ok()) << harness.status();
      harness_.emplace(std::move(*harness));

      auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
      std::string log;
      while (harness_->Running() && std::chrono::steady_clock::now() < deadline) {
        log = base::ReadFile(log_path).value_or("");
        if (absl::StrContains(log, "[critest] starting ")) return;  // kapald's start
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
      log = base::ReadFile(log_path).value_or("");
      if (harness_->Running() || absl::StrContains(log, "[critest] starting ")) return;
      absl::StatusOr<base::ExitInfo> ended = harness_->Wait(std::chrono::seconds(10));
      const bool set_up_failed =
          ended.ok() && ended->exited && ended->exit_code == 2 &&
          (absl::StrContains(log, "run.sh: pushing the test images failed") ||
           absl::StrContains(log, "run.sh: docker-registry did not come up") ||
           absl::StrContains(log, "run.sh: another run.sh holds"));
      if (!set_up_failed || attempt == 3) return;  // TearDown reports how it ended
      std::cerr << "run.sh could not set itself up (attempt " << attempt << "), again:\n"
                << log << std::endl;
      harness_.reset();
      ASSERT_EQ(::rename(log_path.c_str(), absl::StrCat(log_path, ".", attempt).c_str()), 0);
      std::this_thread::sleep_for(std::chrono::seconds(2));
    }
  }

  // The gate opens whatever happened, so run.sh ends and cleans up as it does on success; a
  // SIGTERM (run.sh cleans up on it too) only if it does not.
  void TearDown() override {
    if (!harness_.has_value()) return;
    OpenGate();
    absl::StatusOr<base::ExitInfo> ended = harness_->Wait(std::chrono::seconds(300));
    if (!ended.ok()) {
      ADD_FAILURE() << "run.sh did not end after the gate opened; SIGTERM";
      (void)harness_->Signal(SIGTERM);
      ended = harness_->Wait(std::chrono::seconds(90));
    }
    std::string log = base::ReadFile(dir_->Join("run.log")).value_or("");
    if (ended.ok()) {
      EXPECT_TRUE(ended->exited && ended->exit_code == 0) << "run.sh " << ended->Describe() << ":\n"
                                                          << log;
    }
    // Every pod, the gate too, counted as running by the harness; nothing left behind.
    EXPECT_THAT(log, HasSubstr(absl::StrCat(pods_.size() + 1, " passed, 0 failed"))) << log;
  }

  void OpenGate() { (void)base::WriteFileAtomically(gate_ + "/open", "", 0644); }

  // POD's container NAME as kubelet reports it once it has ended at least once (lastState
  // terminated), asked again for up to 60 s: a pod counts as running during its first run
  // too, before the failure or the OOM kill that the test looks for.
  nlohmann::json StatusAfterARestart(const std::string& pod, const std::string& name) {
    nlohmann::json status;
    for (int attempt = 0; attempt < 60; ++attempt) {
      if (attempt > 0) std::this_thread::sleep_for(std::chrono::seconds(1));
      nlohmann::json list = nlohmann::json::parse(KubeletGet("/pods"), nullptr, false);
      if (!list.is_object()) continue;
      for (const nlohmann::json& item : list.value("items", nlohmann::json::array())) {
        if (Field(item, {"metadata"}).value("name", "") != pod) continue;
        status = ContainerStatus(item, name);
      }
      if (!Field(status, {"lastState", "terminated"}).empty()) break;
    }
    return status;
  }

  // kubelet's /pods once every pod of ours runs (or the time is up), keyed by pod name.
  std::map<std::string, nlohmann::json> WaitForPods() {
    auto deadline = std::chrono::steady_clock::now() + kPodsTimeout;
    std::map<std::string, nlohmann::json> pods;
    for (;;) {
      pods.clear();
      nlohmann::json list = nlohmann::json::parse(KubeletGet("/pods"), nullptr, false);
      if (list.is_object() && list["items"].is_array()) {
        for (const nlohmann::json& pod : list["items"]) {
          pods[Field(pod, {"metadata"}).value("name", "")] = pod;
        }
      }
      size_t running = 0;
      for (const std::string& name : pods_) {
        if (pods.count(name) > 0 && AllRunning(pods[name])) ++running;
      }
      if (running == pods_.size()) return pods;
      if (std::chrono::steady_clock::now() > deadline || !harness_->Running()) return pods;
      std::this_thread::sleep_for(std::chrono::seconds(2));
    }
  }

  // The object at PATH under JSON, or an empty object when a step is missing or not an object
  // (operator[] of a const json on a missing key is undefined, and value() throws on a null).
  static nlohmann::json Field(const nlohmann::json& json, std::initializer_list<const char*> path) {
    nlohmann::json at = json;
    for (const char* key : path) {
      if (!at.is_object() || !at.contains(key) || !at[key].is_object()) {
        return nlohmann::json::object();
      }
      at = at[key];
    }
    return at.is_object() ? at : nlohmann::json::object();
  }

  static bool AllRunning(const nlohmann::json& pod) {
    nlohmann::json statuses = Field(pod, {"status"}).value("containerStatuses", nlohmann::json());
    if (!statuses.is_array() || statuses.empty()) return false;
    // Running and ready: readiness probes have passed too (with the EventedPLEG gate pods come
    // up quickly enough to be looked at before their first probe).
    for (const nlohmann::json& status : statuses) {
      if (!Field(status, {"state"}).contains("running") || !status.is_object() ||
          !status.value("ready", false)) {
        return false;
      }
    }
    return true;
  }

  static nlohmann::json ContainerStatus(const nlohmann::json& pod, const std::string& name,
                                        const char* kind = "containerStatuses") {
    nlohmann::json statuses = Field(pod, {"status"}).value(kind, nlohmann::json::array());
    for (const nlohmann::json& status : statuses) {
      if (status.is_object() && status.value("name", "") == name) return status;
    }
    return nlohmann::json::object();
  }

  // The value of the first sample of metric NAME (without labels) in a Prometheus text, or -1.
  static double MetricValue(const std::string& text, const std::string& name) {
    for (absl::string_view line : absl::StrSplit(text, '\n')) {
      if (!absl::StartsWith(line, name + " ") && !absl::StartsWith(line, name + "{")) continue;
      double value = -1;
      if (absl::SimpleAtod(line.substr(line.rfind(' ') + 1), &value)) return value;
    }
    return -1;
  }

  static std::string Logs(const std::string& pod, const std::string& container,
                          const std::string& query = "") {
    return KubeletGet(absl::StrCat("/containerLogs/default/", pod, "/", container, query));
  }

  // The container's log once it contains NEEDLE (a container may print a moment after it runs),
  // or as it is after 30 s.
  static std::string LogsOnce(const std::string& pod, const std::string& container,
                              const std::string& needle) {
    std::string logs;
    for (int i = 0; i < 60; ++i) {
      logs = Logs(pod, container);
      if (absl::StrContains(logs, needle)) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    return logs;
  }

  // The numbers of a line such as `id -G` prints.
  static std::set<int> Numbers(absl::string_view line) {
    std::set<int> numbers;
    for (absl::string_view word :
         absl::StrSplit(line, absl::ByAnyChar(" ,\n"), absl::SkipEmpty())) {
      int number = 0;
      if (absl::SimpleAtoi(word, &number)) numbers.insert(number);
    }
    return numbers;
  }

  std::optional<base::TempDir> dir_;
  std::string manifests_;
  std::string gate_;
  std::set<std::string> pods_;  // ours, without the gate
  std::optional<base::ChildProcess> harness_;
};

TEST_P(KubeletTest, RunsEveryPodAndReportsWhatKapaldDid) {
  std::map<std::string, nlohmann::json> pods = WaitForPods();
  for (const std::string& name : pods_) {
    ASSERT_TRUE(pods.count(name) > 0 && AllRunning(pods[name]))
        << name << " is not running under kubelet: "
        << (pods.count(name) > 0 ? pods[name]["status"].dump() : "unknown to kubelet") << "\n"
        << base::ReadFile(dir_->Join("run.log")).value_or("");
  }

  // Init container, probes (ready means kubelet's HTTP, TCP and exec probes pass), hostPort.
  nlohmann::json web = pods["web-kapal-node"];
  EXPECT_EQ(Field(ContainerStatus(web, "fill", "initContainerStatuses"), {"state", "terminated"})
                .value("reason", ""),
            "Completed");
  EXPECT_TRUE(ContainerStatus(web, "web").value("ready", false)) << web["status"].dump();
  EXPECT_TRUE(ContainerStatus(web, "sidecar").value("ready", false)) << web["status"].dump();
  EXPECT_THAT(OutputOf({"curl", "-s", "--max-time", "10", "http://127.0.0.1:18091/"}),
              HasSubstr("hello from kubelet on kapald"));
  EXPECT_THAT(LogsOnce("web-kapal-node", "sidecar", "sidecar up"), HasSubstr("sidecar up"));
  // kubelet's exec (an ExecSync through kapald).
  EXPECT_THAT(OutputOf({"curl", "-sk", "--max-time", "10", "-X", "POST",
                        kKubeletApi + "/run/default/web-kapal-node/sidecar?cmd=hostname"}),
              HasSubstr("web"));

  // Security contexts.
  std::string secure = LogsOnce("secure-kapal-node", "main", "Seccomp:");
  EXPECT_THAT(secure, HasSubstr("uid=1000 gid=3000"));
  std::string groups = secure.substr(
      secure.find("groups=") == std::string::npos ? secure.size() : secure.find("groups="));
  EXPECT_EQ(Numbers(absl::StripPrefix(groups.substr(0, groups.find('\n')), "groups=")),
            (std::set<int>{2000, 3000, 4000}))
      << secure;
  EXPECT_THAT(secure, HasSubstr("rootfs read-only"));
  EXPECT_THAT(secure, HasSubstr("CapEff:\t0000000000000000"));
  EXPECT_THAT(secure, HasSubstr("NoNewPrivs:\t1"));
  EXPECT_THAT(secure, HasSubstr("Seccomp:\t2"));

  // Supplemental groups policies: root is in the image's group 10 (wheel).
  EXPECT_EQ(Numbers(LogsOnce("groups-kapal-node", "main", "4000")), (std::set<int>{0, 10, 4000}));
  EXPECT_EQ(Numbers(LogsOnce("strict-groups-kapal-node", "main", "4000")),
            (std::set<int>{0, 4000}));

  // Restart with back-off: one failed run, then a running one.
  const nlohmann::json restart = StatusAfterARestart("restart-kapal-node", "main");
  EXPECT_GE(restart.value("restartCount", 0), 1) << restart.dump();
  EXPECT_EQ(Field(restart, {"lastState", "terminated"}).value("exitCode", -1), 1) << restart.dump();
  EXPECT_THAT(LogsOnce("restart-kapal-node", "main", "second run"), HasSubstr("second run"));
  EXPECT_THAT(Logs("restart-kapal-node", "main", "?previous=true"), HasSubstr("failing once"));

  // Over its memory limit: OOMKilled with 137, then restarted.
  const nlohmann::json oom = StatusAfterARestart("oom-kapal-node", "main");
  EXPECT_EQ(Field(oom, {"lastState", "terminated"}).value("reason", ""), "OOMKilled") << oom.dump();
  EXPECT_EQ(Field(oom, {"lastState", "terminated"}).value("exitCode", -1), 137) << oom.dump();

  // hostUsers: false: root inside, an unprivileged range outside; files look root's inside.
  std::string userns = LogsOnce("userns-kapal-node", "main", "data 0");
  std::vector<std::string> lines = absl::StrSplit(userns, '\n');
  ASSERT_GE(lines.size(), 5u) << userns;
  std::vector<std::string> uid_map = absl::StrSplit(lines[0], ' ', absl::SkipEmpty());
  ASSERT_EQ(uid_map.size(), 3u) << userns;
  EXPECT_EQ(uid_map[0], "0");
  int64_t host_id = 0;
  EXPECT_TRUE(absl::SimpleAtoi(uid_map[1], &host_id));
  EXPECT_GE(host_id, 65536) << userns;
  EXPECT_EQ(uid_map[2], "65536");
  EXPECT_THAT(userns, HasSubstr("\n0\n"));  // id -u
  EXPECT_THAT(userns, HasSubstr("etc 0"));
  EXPECT_THAT(userns, HasSubstr("data 0"));

  // The same with one PID namespace for the pod: it belongs to the user namespace too.
  std::string shared_pid = LogsOnce("userns-shared-pid-kapal-node", "main", "sleep 3601");
  EXPECT_THAT(shared_pid, HasSubstr("sleep 3601")) << shared_pid;  // the other container
  EXPECT_THAT(shared_pid, ::testing::Not(HasSubstr("4294967295"))) << shared_pid;

  // Image volume: the image's files, whole and by sub path, read-only.
  std::string image_volume = LogsOnce("image-volume-kapal-node", "main", "read-only");
  EXPECT_THAT(image_volume, HasSubstr("Welcome to nginx!"));
  EXPECT_THAT(image_volume, HasSubstr("index.html"));
  EXPECT_THAT(image_volume, HasSubstr("image volume read-only"));

  // Stats: kubelet's summary from kapald's ListPodSandboxStats / ListContainerStats (with the
  // default gates from cAdvisor, whose first figures for a new container may come a
  // housekeeping round later: asked again for up to 30 s). Fields are read with value(): a
  // container may have no "memory" yet.
  nlohmann::json summary;
  bool web_stats = false;
  for (int attempt = 0; attempt < 30 && !web_stats; ++attempt) {
    if (attempt > 0) std::this_thread::sleep_for(std::chrono::seconds(1));
    summary = nlohmann::json::parse(KubeletGet("/stats/summary"), nullptr, false);
    if (!summary.is_object()) continue;
    for (const nlohmann::json& pod : summary.value("pods", nlohmann::json::array())) {
      if (!pod.is_object()) continue;
      if (Field(pod, {"podRef"}).value("name", "") != "web-kapal-node") continue;
      for (const nlohmann::json& container : pod.value("containers", nlohmann::json::array())) {
        if (!container.is_object() || container.value("name", "") != "sidecar") continue;
        web_stats = Field(container, {"memory"}).value("workingSetBytes", uint64_t{0}) > 0 &&
                    Field(container, {"cpu"}).value("usageCoreNanoSeconds", uint64_t{0}) > 0;
      }
    }
  }
  ASSERT_TRUE(summary.is_object()) << "no /stats/summary";
  EXPECT_TRUE(web_stats) << summary.dump().substr(0, 2000);

  if (std::string(GetParam().gates).empty()) return;
  // Evented PLEG: kubelet subscribed to kapald's events and never lost the stream (it would
  // count an error and fall back to relisting).
  std::string kubelet_metrics = KubeletGet("/metrics");
  EXPECT_GE(MetricValue(kubelet_metrics, "kubelet_evented_pleg_connection_success_count"), 1)
      << kubelet_metrics.substr(0, 2000);
  EXPECT_EQ(MetricValue(kubelet_metrics, "kubelet_evented_pleg_connection_error_count"), 0);
  // /metrics/cadvisor from kapald's ListPodSandboxMetrics.
  std::string cadvisor = KubeletGet("/metrics/cadvisor");
  bool sidecar_memory = false;
  for (absl::string_view line : absl::StrSplit(cadvisor, '\n')) {
    if (absl::StartsWith(line, "container_memory_working_set_bytes{") &&
        absl::StrContains(line, "container=\"sidecar\"") &&
        absl::StrContains(line, "pod=\"web-kapal-node\"")) {
      sidecar_memory = true;
    }
  }
  EXPECT_TRUE(sidecar_memory) << cadvisor.substr(0, 3000);
  EXPECT_THAT(cadvisor, HasSubstr("container_network_receive_bytes_total{"));
}

INSTANTIATE_TEST_SUITE_P(
    Gates, KubeletTest,
    ::testing::Values(KubeletGates{"Default", ""},
                      KubeletGates{"EventedPlegAndCriStats",
                                   "EventedPLEG: true, PodAndContainerStatsFromCRI: true"}),
    [](const ::testing::TestParamInfo<KubeletGates>& run) { return run.param.name; });

}  // namespace
}  // namespace kapal::testing
