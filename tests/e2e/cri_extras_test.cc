// What kubelet and crictl use beyond running pods: container events (evented PLEG), the CRI
// metrics, CDI devices, the image filesystem's info, checkpoints. Against a real kapald, with
// crictl v1.36 from ../shared where the test says so.

#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "gmock/gmock.h"
#include "nlohmann/json.hpp"
#include "tests/fixtures/pod_fixture.h"

namespace kapal::testing {
namespace {

using ::testing::HasSubstr;

class CriExtrasTest : public PodFixture {
 protected:
  // crictl of the CRI validation suite when it sits beside the checkout; "" otherwise.
  static std::string Crictl() {
    const std::string crictl = KAPAL_SOURCE_DIR "/../shared/critest/bin/crictl";
    return ::access(crictl.c_str(), X_OK) == 0 ? crictl : "";
  }
  CommandResult RunCrictl(std::vector<std::string> args,
                          std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    std::vector<std::string> argv = {Crictl(), "--config", "/dev/null", "-r", kapald_->Endpoint()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, timeout);
  }
};

// Reads GetContainerEvents on its own thread until told to stop or the stream ends.
class EventReader {
 public:
  explicit EventReader(runtime::v1::RuntimeService::Stub& stub) {
    reader_ = stub.GetContainerEvents(&context_, GetEventsRequest());
    thread_ = std::thread([this] {
      ContainerEventResponse event;
      while (reader_->Read(&event)) {
        std::lock_guard lock(mutex_);
        events_.push_back(event);
      }
      grpc::Status finished = reader_->Finish();
      std::lock_guard lock(mutex_);
      end_ = finished;
      ended_ = true;
    });
  }
  ~EventReader() {
    context_.TryCancel();
    thread_.join();
  }
  // Waits (at most 20 s) until an event of TYPE for ID came; returns it, or nothing.
  std::optional<ContainerEventResponse> WaitFor(const std::string& id, ContainerEventType type) {
    for (int i = 0; i < 2000; ++i) {
      {
        std::lock_guard lock(mutex_);
        for (const ContainerEventResponse& event : events_) {
          if (event.container_id() == id && event.container_event_type() == type) return event;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return std::nullopt;
  }
  std::vector<ContainerEventResponse> Events() {
    std::lock_guard lock(mutex_);
    return events_;
  }
  bool ended() const { return ended_; }
  // How the stream ended, once it has.
  grpc::Status end() {
    std::lock_guard lock(mutex_);
    return end_;
  }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReader<ContainerEventResponse>> reader_;
  std::thread thread_;
  std::mutex mutex_;
  std::vector<ContainerEventResponse> events_;
  grpc::Status end_;
  std::atomic<bool> ended_ = false;
};

// The evented PLEG's stream: each subscriber sees a pod's and its containers' whole lifecycle,
// each event with the pod's status and all its containers' statuses as they were then.
TEST_F(CriExtrasTest, ContainerEventsCarryThePodsWholeStatusToEverySubscriber) {
  EventReader first(*stub_);
  EventReader second(*stub_);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // both subscribed
  absl::StatusOr<std::string> pod = RunPod(PodConfig("events"));
  ASSERT_TRUE(pod.ok()) << pod.status();
  std::string slow = Run(*pod, ContainerWith("slow", {"sleep", "100"}));
  std::string quick = Run(*pod, ContainerWith("quick", {"true"}));
  WaitForExit(quick);

  for (EventReader* reader : {&first, &second}) {
    auto pod_started = reader->WaitFor(*pod, CONTAINER_STARTED_EVENT);
    ASSERT_TRUE(pod_started.has_value());
    EXPECT_EQ(pod_started->pod_sandbox_status().metadata().uid(), "uid-events");
    EXPECT_EQ(pod_started->pod_sandbox_status().state(), SANDBOX_READY);
    EXPECT_FALSE(pod_started->pod_sandbox_status().network().ip().empty());
    EXPECT_GT(pod_started->created_at(), 0);
    ASSERT_TRUE(reader->WaitFor(quick, CONTAINER_CREATED_EVENT).has_value());
    ASSERT_TRUE(reader->WaitFor(quick, CONTAINER_STARTED_EVENT).has_value());
    auto quick_stopped = reader->WaitFor(quick, CONTAINER_STOPPED_EVENT);
    ASSERT_TRUE(quick_stopped.has_value());
    // The pod's containers as they were when quick stopped: quick exited 0, slow there too.
    std::map<std::string, ContainerStatus> statuses;
    for (const ContainerStatus& status : quick_stopped->containers_statuses()) {
      statuses[status.id()] = status;
    }
    ASSERT_TRUE(statuses.contains(quick));
    EXPECT_EQ(statuses[quick].state(), CONTAINER_EXITED);
    EXPECT_EQ(statuses[quick].exit_code(), 0);
    EXPECT_EQ(statuses[quick].metadata().name(), "quick");
    EXPECT_TRUE(statuses.contains(slow));
    ASSERT_TRUE(reader->WaitFor(slow, CONTAINER_STARTED_EVENT).has_value());
  }

  // PodSandboxStatus carries the same container statuses (kubelet with the EventedPLEG gate
  // reads them there) and the time they were taken.
  PodSandboxStatusRequest status_request;
  status_request.set_pod_sandbox_id(*pod);
  PodSandboxStatusResponse status;
  ASSERT_TRUE(stub_->PodSandboxStatus(LongContext().get(), status_request, &status).ok());
  EXPECT_GT(status.timestamp(), 0);
  ASSERT_EQ(status.containers_statuses_size(), 2);
  // Newest first: kubelet takes the first status of a name as the container's latest.
  EXPECT_EQ(status.containers_statuses(0).id(), quick);
  EXPECT_EQ(status.containers_statuses(0).state(), CONTAINER_EXITED);
  EXPECT_EQ(status.containers_statuses(1).id(), slow);
  EXPECT_EQ(status.containers_statuses(1).state(), CONTAINER_RUNNING);

  ASSERT_TRUE(StopPod(*pod).ok());
  ASSERT_TRUE(RemovePod(*pod).ok());
  for (EventReader* reader : {&first, &second}) {
    auto slow_stopped = reader->WaitFor(slow, CONTAINER_STOPPED_EVENT);
    ASSERT_TRUE(slow_stopped.has_value());
    ASSERT_TRUE(reader->WaitFor(slow, CONTAINER_DELETED_EVENT).has_value());
    ASSERT_TRUE(reader->WaitFor(*pod, CONTAINER_STOPPED_EVENT).has_value());
    // The pod's own DELETED event still names it, so kubelet knows whose entry to drop.
    auto pod_deleted = reader->WaitFor(*pod, CONTAINER_DELETED_EVENT);
    ASSERT_TRUE(pod_deleted.has_value());
    EXPECT_EQ(pod_deleted->pod_sandbox_status().id(), *pod);
    EXPECT_EQ(pod_deleted->pod_sandbox_status().metadata().uid(), "uid-events");
    EXPECT_EQ(pod_deleted->containers_statuses_size(), 0);
    // Each subscriber saw every change once, in order.
    std::vector<std::string> of_quick;
    for (const ContainerEventResponse& event : reader->Events()) {
      if (event.container_id() == quick) {
        of_quick.push_back(ContainerEventType_Name(event.container_event_type()));
      }
    }
    EXPECT_THAT(of_quick,
                ::testing::ElementsAre("CONTAINER_CREATED_EVENT", "CONTAINER_STARTED_EVENT",
                                       "CONTAINER_STOPPED_EVENT", "CONTAINER_DELETED_EVENT"));
  }

  // A stopping kapald ends the streams itself, saying why (rather than holding its shutdown
  // until the server cancels them).
  absl::StatusOr<base::ExitInfo> ended = kapald_->Terminate(std::chrono::seconds(60));
  ASSERT_TRUE(ended.ok()) << ended.status();
  for (int i = 0; i < 500 && !(first.ended() && second.ended()); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  for (EventReader* reader : {&first, &second}) {
    ASSERT_TRUE(reader->ended());
    EXPECT_EQ(reader->end().error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_THAT(reader->end().error_message(), HasSubstr("kapald is stopping"));
  }
  ASSERT_TRUE(kapald_->Restart().ok());
}

// A container killed for going over its memory limit: its STOPPED event says OOMKilled, 137.
// A runtime whose `start` returns late, as runc's does on a loaded node: the process may have
// ended, and its shim noted the exit, before kapald hears that it started.
class LateStartTest : public CriExtrasTest {
 protected:
  LateStartTest() : wrapper_dir_(*base::TempDir::Create("kapal-late-start")) {
    std::string runc = ::access("/usr/sbin/runc", X_OK) == 0 ? "/usr/sbin/runc" : "/usr/bin/runc";
    std::string script = absl::StrCat("#!/bin/sh\n", runc,
                                      " \"$@\"\nended=$?\n"
                                      "case \" $* \" in *\" start \"*) sleep 0.5 ;; esac\n"
                                      "exit $ended\n");
    EXPECT_TRUE(base::WriteFileAtomically(Wrapper(), script, 0755).ok());
  }
  std::string Wrapper() const { return wrapper_dir_.Path() + "/late-runc"; }
  std::string ExtraToml() const override {
    return absl::StrCat("[runtime.handlers.late]\nbinary = \"", Wrapper(), "\"\n");
  }
  base::TempDir wrapper_dir_;
};

// Every subscriber hears a container's start before its stop, even when the exit was noted
// while the runtime's start had not returned (kubelet's evented PLEG would otherwise keep a
// finished container as running).
TEST_F(LateStartTest, AnExitDuringTheStartIsReportedAfterIt) {
  EventReader reader(*stub_);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // subscribed
  RunPodSandboxRequest request;
  *request.mutable_config() = PodConfig("late");
  request.set_runtime_handler("late");
  RunPodSandboxResponse response;
  ASSERT_TRUE(stub_->RunPodSandbox(LongContext().get(), request, &response).ok());
  std::string pod = response.pod_sandbox_id();
  std::string quick = Run(pod, ContainerWith("quick", {"true"}));
  ContainerStatus status = WaitForExit(quick);
  EXPECT_EQ(status.exit_code(), 0);
  EXPECT_EQ(status.reason(), "Completed");
  EXPECT_GT(status.started_at(), 0);
  EXPECT_LE(status.started_at(), status.finished_at());
  ASSERT_TRUE(reader.WaitFor(quick, CONTAINER_STOPPED_EVENT).has_value());
  std::vector<std::string> of_quick;
  for (const ContainerEventResponse& event : reader.Events()) {
    if (event.container_id() == quick) {
      of_quick.push_back(ContainerEventType_Name(event.container_event_type()));
    }
  }
  EXPECT_THAT(of_quick, ::testing::ElementsAre("CONTAINER_CREATED_EVENT", "CONTAINER_STARTED_EVENT",
                                               "CONTAINER_STOPPED_EVENT"));
  ASSERT_TRUE(StopPod(pod).ok());
  ASSERT_TRUE(RemovePod(pod).ok());
}

TEST_F(CriExtrasTest, AnOomKillIsInTheEvents) {
  EventReader events(*stub_);
  absl::StatusOr<std::string> pod = RunPod(PodConfig("oom-events"));
  ASSERT_TRUE(pod.ok()) << pod.status();
  std::string id = Run(*pod, MemoryHog("hog"));
  auto stopped = events.WaitFor(id, CONTAINER_STOPPED_EVENT);
  ASSERT_TRUE(stopped.has_value());
  bool found = false;
  for (const ContainerStatus& status : stopped->containers_statuses()) {
    if (status.id() != id) continue;
    found = true;
    EXPECT_EQ(status.reason(), "OOMKilled");
    EXPECT_EQ(status.exit_code(), 137);
  }
  EXPECT_TRUE(found);
}

// crictl's events command shows the same stream.
TEST_F(CriExtrasTest, CrictlEventsShowsAContainersLifecycle) {
  if (Crictl().empty()) GTEST_SKIP() << "no ../shared/critest/bin/crictl beside the checkout";
  absl::StatusOr<std::string> pod = RunPod(PodConfig("crictl-events"));
  ASSERT_TRUE(pod.ok()) << pod.status();
  std::string id;
  std::thread watcher;
  CommandResult events;
  watcher = std::thread([&] {
    events = RunCrictl({"events", "-o", "json"}, std::chrono::seconds(4));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(800));
  id = Run(*pod, ContainerWith("blip", {"true"}));
  WaitForExit(id);
  watcher.join();
  // crictl events runs until stopped: the timeout ended it; what it printed is what counts.
  EXPECT_THAT(events.out, HasSubstr(id));
  EXPECT_THAT(events.out, HasSubstr("CONTAINER_CREATED_EVENT"));
  EXPECT_THAT(events.out, HasSubstr("CONTAINER_STARTED_EVENT"));
  EXPECT_THAT(events.out, HasSubstr("CONTAINER_STOPPED_EVENT"));
  EXPECT_THAT(events.out, HasSubstr("crictl-events"));
}

// crictl's metricdescs and metricsp: cAdvisor's metrics of a pod and its container, read from
// the cgroups and the pod's network namespace.
TEST_F(CriExtrasTest, CrictlShowsMetricDescriptorsAndPodMetrics) {
  if (Crictl().empty()) GTEST_SKIP() << "no ../shared/critest/bin/crictl beside the checkout";
  absl::StatusOr<std::string> pod = RunPod(PodConfig("metrics"));
  ASSERT_TRUE(pod.ok()) << pod.status();
  // A process that uses memory and keeps running.
  std::string id = Run(*pod, ContainerWith("busy", {"sh", "-c", "x=$(seq 1 20000); sleep 100"}));

  CommandResult descriptors = RunCrictl({"metricdescs", "-o", "json"});
  ASSERT_EQ(descriptors.exit_code, 0) << descriptors.err;
  nlohmann::json described = nlohmann::json::parse(descriptors.out, nullptr, false);
  ASSERT_TRUE(described.is_object()) << descriptors.out;
  std::map<std::string, size_t> label_counts;
  for (const nlohmann::json& descriptor : described["descriptors"]) {
    label_counts[descriptor.value("name", "")] = descriptor["labelKeys"].size();
  }
  EXPECT_TRUE(label_counts.contains("container_memory_working_set_bytes"));
  EXPECT_TRUE(label_counts.contains("container_network_receive_bytes_total"));

  CommandResult metrics = RunCrictl({"metricsp", "-o", "json"});
  ASSERT_EQ(metrics.exit_code, 0) << metrics.err;
  nlohmann::json listed = nlohmann::json::parse(metrics.out, nullptr, false);
  ASSERT_TRUE(listed.is_object()) << metrics.out;
  bool pod_network = false, container_memory = false;
  for (const nlohmann::json& pod_metrics : listed["podMetrics"]) {
    if (pod_metrics.value("podSandboxId", "") != *pod) continue;
    for (const nlohmann::json& metric : pod_metrics["metrics"]) {
      EXPECT_EQ(metric["labelValues"].size(), label_counts[metric.value("name", "")])
          << metric.dump();
      if (metric.value("name", "") == "container_network_transmit_packets_total") {
        pod_network = true;
      }
    }
    for (const nlohmann::json& container : pod_metrics["containerMetrics"]) {
      EXPECT_EQ(container.value("containerId", ""), id);
      for (const nlohmann::json& metric : container["metrics"]) {
        EXPECT_EQ(metric["labelValues"].size(), label_counts[metric.value("name", "")])
            << metric.dump();
        if (metric.value("name", "") == "container_memory_working_set_bytes") {
          // UInt64Value's value, a JSON string or number by the printer's choice.
          const nlohmann::json& value = metric["value"]["value"];
          uint64_t bytes =
              value.is_string() ? std::stoull(value.get<std::string>()) : value.get<uint64_t>();
          container_memory = bytes > 0;
          EXPECT_EQ(metric["labelValues"][0], "busy");
          EXPECT_EQ(metric["labelValues"][5], "metrics");
        }
      }
    }
  }
  EXPECT_TRUE(pod_network) << metrics.out.substr(0, 3000);
  EXPECT_TRUE(container_memory) << metrics.out.substr(0, 3000);

  // crictl imagefsinfo: the image filesystem and the containers' writable layers.
  CommandResult fsinfo = RunCrictl({"imagefsinfo", "-o", "json"});
  ASSERT_EQ(fsinfo.exit_code, 0) << fsinfo.err;
  nlohmann::json filesystems = nlohmann::json::parse(fsinfo.out, nullptr, false);
  ASSERT_TRUE(filesystems.is_object()) << fsinfo.out;
  const nlohmann::json& status = filesystems["status"];
  ASSERT_EQ(status["imageFilesystems"].size(), 1u) << fsinfo.out;
  ASSERT_EQ(status["containerFilesystems"].size(), 1u) << fsinfo.out;
  EXPECT_EQ(status["imageFilesystems"][0]["fsId"]["mountpoint"], kapald_->RootDir());
  const nlohmann::json& used = status["imageFilesystems"][0]["usedBytes"]["value"];
  EXPECT_GT(used.is_string() ? std::stoull(used.get<std::string>()) : used.get<uint64_t>(), 0u);
}

// CheckpointContainer asks CRIU whether this kernel can be checkpointed and says why not; it
// never answers UNKNOWN. (On the kernels this was written on, CRIU 3.17 cannot start: its vDSO
// check fails, so the answer is FAILED_PRECONDITION with CRIU's reason; where CRIU works,
// kapald says it does not write archives yet.)
TEST_F(CriExtrasTest, CheckpointSaysWhetherAndWhyItCannotBeDone) {
  absl::StatusOr<std::string> pod = RunPod(PodConfig("checkpoint"));
  ASSERT_TRUE(pod.ok()) << pod.status();
  std::string running = Run(*pod, ContainerWith("running", {"sleep", "100"}));
  std::string exited = Run(*pod, ContainerWith("exited", {"true"}));
  WaitForExit(exited);
  auto checkpoint = [&](const std::string& id, const std::string& location) {
    CheckpointContainerRequest request;
    request.set_container_id(id);
    request.set_location(location);
    CheckpointContainerResponse response;
    return stub_->CheckpointContainer(LongContext().get(), request, &response);
  };
  EXPECT_EQ(checkpoint("no-such-container", "/tmp/c.tar").error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(checkpoint(exited, "/tmp/c.tar").error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(checkpoint(running, "relative.tar").error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  grpc::Status answered = checkpoint(running, "/tmp/kapal-checkpoint-test.tar");
  ASSERT_FALSE(answered.ok());
  if (answered.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
    EXPECT_THAT(answered.error_message(), HasSubstr("CRIU"));
  } else {
    EXPECT_EQ(answered.error_code(), grpc::StatusCode::UNIMPLEMENTED) << answered.error_message();
  }
  EXPECT_NE(::access("/tmp/kapal-checkpoint-test.tar", F_OK), 0) << "no archive is left";
  // The container runs on, untouched.
  EXPECT_EQ(StatusOf(running).state(), CONTAINER_RUNNING);
  if (!Crictl().empty()) {
    CommandResult crictl = RunCrictl({"checkpoint", "--export=/tmp/kapal-crictl.tar", running});
    EXPECT_NE(crictl.exit_code, 0);
    EXPECT_THAT(crictl.err, ::testing::AnyOf(HasSubstr("CRIU"), HasSubstr("archives")))
        << crictl.err;
  }
}

// CDI devices from spec files of a directory of the test's (one YAML, one JSON).
class CdiTest : public CriExtrasTest {
 protected:
  CdiTest() : specs_(*base::TempDir::Create("kapal-cdi")) {}
  std::string ExtraToml() const override {
    return absl::StrCat("[cdi]\nspec_dirs = [\"/nonexistent/cdi\", \"", specs_.Path(), "\"]\n");
  }
  base::TempDir specs_;
};

// A device of a spec exposes the host's /dev/null under another name, with an environment
// variable and a mount; the spec's own edits come too. An unknown device is INVALID_ARGUMENT
// naming it and leaves no container.
TEST_F(CdiTest, DevicesFromSpecsReachTheContainerAndUnknownOnesAreRefused) {
  ASSERT_TRUE(base::WriteFileAtomically(specs_.Join("shared.txt"), "from the cdi mount\n").ok());
  ASSERT_TRUE(base::WriteFileAtomically(specs_.Join("null.yaml"),
                                        absl::StrCat(R"(
cdiVersion: "0.6.0"
kind: kapal.test/null
containerEdits:
  env: ["KAPAL_CDI_SPEC=yaml"]
devices:
  - name: quiet
    containerEdits:
      deviceNodes:
        - path: /dev/kapal-null
          hostPath: /dev/null
          permissions: rw
      env: ["KAPAL_CDI_DEVICE=quiet"]
      mounts:
        - hostPath: )",
                                                     specs_.Join("shared.txt"), R"(
          containerPath: /cdi/shared.txt
          options: ["ro", "rbind"]
)"))
                  .ok());
  ASSERT_TRUE(base::WriteFileAtomically(specs_.Join("zero.json"), R"({
  "cdiVersion": "0.5.0",
  "kind": "kapal.test/zero",
  "devices": [{"name": "z", "containerEdits": {"deviceNodes": [{"path": "/dev/kapal-zero",
      "hostPath": "/dev/zero"}], "additionalGIDs": [4321]}}]
})")
                  .ok());
  ASSERT_TRUE(base::WriteFileAtomically(specs_.Join("broken.yaml"), "cdiVersion: [\n").ok());

  absl::StatusOr<std::string> pod = RunPod(PodConfig("cdi"));
  ASSERT_TRUE(pod.ok()) << pod.status();
  ContainerConfig config = ContainerWith("devices", {"sleep", "100"});
  config.add_cdi_devices()->set_name("kapal.test/null=quiet");
  config.add_cdi_devices()->set_name("kapal.test/zero=z");
  std::string id = Run(*pod, config);
  ExecSyncResponse out;
  ASSERT_TRUE(Exec(id,
                   {"sh", "-c",
                    "echo hi > /dev/kapal-null && head -c 3 /dev/kapal-zero | wc -c && "
                    "echo $KAPAL_CDI_DEVICE $KAPAL_CDI_SPEC && cat /cdi/shared.txt && id -G && "
                    "ls -l /dev/kapal-null"},
                   &out)
                  .ok());
  EXPECT_EQ(out.exit_code(), 0) << out.stderr();
  EXPECT_THAT(out.stdout(), HasSubstr("3\n"));
  EXPECT_THAT(out.stdout(), HasSubstr("quiet yaml"));
  EXPECT_THAT(out.stdout(), HasSubstr("from the cdi mount"));
  EXPECT_THAT(out.stdout(), HasSubstr("4321"));
  EXPECT_THAT(out.stdout(), HasSubstr("crw-rw-rw-"));

  size_t containers_before = Containers().size();
  for (const char* name : {"kapal.test/null=loud", "no-kind", "kapal.test/absent=x"}) {
    ContainerConfig bad = ContainerWith(absl::StrCat("bad-", containers_before), {"true"});
    bad.add_cdi_devices()->set_name(name);
    std::string bad_id;
    grpc::Status refused = Create(*pod, bad, &bad_id);
    EXPECT_EQ(refused.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << name;
    EXPECT_THAT(refused.error_message(), HasSubstr(name));
  }
  // The broken spec is named where a device could have come from it.
  ContainerConfig bad = ContainerWith("bad-named", {"true"});
  bad.add_cdi_devices()->set_name("kapal.test/absent=x");
  std::string bad_id;
  EXPECT_THAT(Create(*pod, bad, &bad_id).error_message(), HasSubstr("broken.yaml"));
  EXPECT_EQ(Containers().size(), containers_before);
}

// Containers' writable layers on a filesystem of their own ([images] writable_layers_dir, here a
// tmpfs the test mounts): ImageFsInfo reports the two filesystems apart (KEP-4191), a container's
// writes land there, its stats name it, and removing the container leaves nothing there.
class SplitImageFsTest : public CriExtrasTest {
 protected:
  SplitImageFsTest() : writable_(*base::TempDir::Create("kapal-writable")) {
    mounted_ = ::mount("tmpfs", writable_.Path().c_str(), "tmpfs", 0, "size=256m,mode=0711") == 0;
  }
  std::string ExtraToml() const override {
    return absl::StrCat("[images]\nwritable_layers_dir = \"", writable_.Path(), "\"\n");
  }
  void TearDown() override {
    CriExtrasTest::TearDown();
    kapald_.reset();  // its containers go before their filesystem does
    if (mounted_) ::umount2(writable_.Path().c_str(), MNT_DETACH);
  }
  base::TempDir writable_;
  bool mounted_ = false;
};

TEST_F(SplitImageFsTest, WritableLayersLiveOnTheirOwnFilesystem) {
  ASSERT_TRUE(mounted_) << "cannot mount a tmpfs for the writable layers";
  absl::StatusOr<std::string> pod = RunPod(PodConfig("split"));
  ASSERT_TRUE(pod.ok()) << pod.status();
  std::string id =
      Run(*pod, ContainerWith("writer", {"sh", "-c", "echo data > /written; sleep 100"}));
  ExecSyncResponse out;
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(Exec(id, {"cat", "/written"}, &out).ok());
    if (out.exit_code() == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(out.stdout(), "data\n");

  runtime::v1::ImageFsInfoResponse fs;
  ASSERT_TRUE(kapald_->ImageStub()->ImageFsInfo(LongContext().get(), {}, &fs).ok());
  ASSERT_EQ(fs.image_filesystems_size(), 1);
  ASSERT_EQ(fs.container_filesystems_size(), 1);
  EXPECT_EQ(fs.image_filesystems(0).fs_id().mountpoint(), kapald_->RootDir());
  EXPECT_EQ(fs.container_filesystems(0).fs_id().mountpoint(), writable_.Path());
  EXPECT_GT(fs.container_filesystems(0).used_bytes().value(), 0u);

  // The write is in an upper directory on the tmpfs.
  auto snapshots = base::ListDirectory(writable_.Join("snapshots"));
  ASSERT_TRUE(snapshots.ok()) << snapshots.status();
  ASSERT_EQ(snapshots->size(), 1u);
  EXPECT_EQ(
      base::ReadFile(writable_.Join("snapshots/" + (*snapshots)[0] + "/fs/written")).value_or(""),
      "data\n");
  ContainerStatsRequest stats_request;
  stats_request.set_container_id(id);
  ContainerStatsResponse stats;
  ASSERT_TRUE(stub_->ContainerStats(LongContext().get(), stats_request, &stats).ok());
  EXPECT_EQ(stats.stats().writable_layer().fs_id().mountpoint(), writable_.Path());

  ASSERT_TRUE(StopPod(*pod).ok());
  ASSERT_TRUE(RemovePod(*pod).ok());
  snapshots = base::ListDirectory(writable_.Join("snapshots"));
  ASSERT_TRUE(snapshots.ok());
  EXPECT_TRUE(snapshots->empty());
}

}  // namespace
}  // namespace kapal::testing
