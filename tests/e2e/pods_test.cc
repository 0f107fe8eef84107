// Pods and containers end to end: the real kapald, kapal-shim, runc, CNI plugins and registry.
#include <SQLiteCpp/SQLiteCpp.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "base/unique_fd.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fixtures/cni_fixture.h"
#include "tests/fixtures/kapald_fixture.h"
#include "tests/fixtures/pod_fixture.h"
#include "tests/fixtures/registry_fixture.h"

namespace kapal::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::SizeIs;

class PodsTest : public PodFixture {};

TEST_F(PodsTest, WholeLifecycleLeavesNothingBehind) {
  PodSandboxConfig pod_config = PodConfig("life");
  absl::StatusOr<std::string> pod = RunPod(pod_config);
  ASSERT_TRUE(pod.ok()) << pod.status();
  PodSandboxStatus pod_status = PodStatus(*pod);
  EXPECT_EQ(pod_status.state(), SANDBOX_READY);
  EXPECT_EQ(pod_status.metadata().name(), "life");
  const std::string& subnet = cni_->Subnet();  // 10.88.N.0/24
  EXPECT_TRUE(absl::StartsWith(pod_status.network().ip(), subnet.substr(0, subnet.rfind('.') + 1)))
      << pod_status.network().ip() << " not in " << cni_->Subnet();

  // A process that ignores SIGTERM (as PID 1 of its own namespace would).
  std::string id = Run(*pod, ContainerWith("sleeper", {"sh", "-c", "trap '' TERM; sleep 1000"}));
  ContainerStatus running = StatusOf(id);
  EXPECT_EQ(running.state(), CONTAINER_RUNNING);
  EXPECT_GT(running.started_at(), running.created_at() - 1);
  EXPECT_EQ(running.image().image(), image_);
  EXPECT_THAT(running.image_ref(), HasSubstr("@sha256:"));
  EXPECT_EQ(running.log_path(), logs_ + "/life/sleeper.log");

  ExecSyncResponse exec;
  ASSERT_TRUE(
      Exec(id, {"sh", "-c", "hostname; cat /etc/hostname; echo oops >&2; exit 7"}, &exec).ok());
  EXPECT_EQ(exec.stdout(), "life\nlife\n");
  EXPECT_EQ(exec.stderr(), "oops\n");
  EXPECT_EQ(exec.exit_code(), 7);

  StopContainerRequest stop;
  stop.set_container_id(id);
  stop.set_timeout(1);
  StopContainerResponse stopped;
  ASSERT_TRUE(stub_->StopContainer(LongContext().get(), stop, &stopped).ok());
  ContainerStatus exited = StatusOf(id);
  EXPECT_EQ(exited.state(), CONTAINER_EXITED);
  // SIGTERM is ignored: SIGKILL after the timeout.
  EXPECT_EQ(exited.exit_code(), 137);
  EXPECT_EQ(exited.reason(), "Error");
  // Stopping again is fine.
  ASSERT_TRUE(stub_->StopContainer(LongContext().get(), stop, &stopped).ok());

  RemoveContainerRequest remove;
  remove.set_container_id(id);
  RemoveContainerResponse removed;
  ASSERT_TRUE(stub_->RemoveContainer(LongContext().get(), remove, &removed).ok());
  EXPECT_THAT(Containers(), SizeIs(0));
  ASSERT_TRUE(stub_->RemoveContainer(LongContext().get(), remove, &removed).ok());

  ASSERT_TRUE(StopPod(*pod).ok());
  EXPECT_EQ(PodStatus(*pod).state(), SANDBOX_NOTREADY);
  ASSERT_TRUE(StopPod(*pod).ok());
  ASSERT_TRUE(RemovePod(*pod).ok());
  ASSERT_TRUE(RemovePod(*pod).ok());  // unknown id: fine
  EXPECT_EQ(MountsUnder(kapald_->StateDir()), 0);
  EXPECT_FALSE(base::ListDirectory(kapald_->StateDir() + "/pods")->size() > 0);
  for (const char* hierarchy : {"memory", "pids", "cpu"}) {
    EXPECT_NE(::access(absl::StrCat("/sys/fs/cgroup/", hierarchy, "/kapal/", *pod).c_str(), F_OK),
              0);
  }
}

TEST_F(PodsTest, ExitCodesReasonsAndCriLogs) {
  absl::StatusOr<std::string> pod = RunPod(PodConfig("exits"));
  ASSERT_TRUE(pod.ok()) << pod.status();
  std::string failing = Run(
      *pod,
      ContainerWith("failing", {"sh", "-c", "echo hello; echo oops >&2; printf partial; exit 3"}));
  std::string fine = Run(*pod, ContainerWith("fine", {"true"}));
  ContainerStatus failed = WaitForExit(failing);
  EXPECT_EQ(failed.exit_code(), 3);
  EXPECT_EQ(failed.reason(), "Error");
  EXPECT_GE(failed.finished_at(), failed.started_at());
  ContainerStatus completed = WaitForExit(fine);
  EXPECT_EQ(completed.exit_code(), 0);
  EXPECT_EQ(completed.reason(), "Completed");

  std::vector<std::string> entries = LogEntries(failed.log_path());
  ASSERT_THAT(entries, SizeIs(3));
  EXPECT_THAT(entries, ::testing::UnorderedElementsAre("stdout F hello", "stderr F oops",
                                                       "stdout P partial"));
  std::ifstream raw(failed.log_path());
  std::string first;
  std::getline(raw, first);
  // RFC 3339 with nanoseconds, UTC.
  EXPECT_EQ(first[4], '-');
  EXPECT_EQ(first[29], 'Z') << first;
}

TEST_F(PodsTest, CommandArgsEnvWorkingDirAndUserFollowKubernetesRules) {
  absl::StatusOr<std::string> pod = RunPod(PodConfig("rules"));
  ASSERT_TRUE(pod.ok()) << pod.status();
  // Args only: the image's entrypoint (sh -c) with these args.
  ContainerConfig args_only = ContainerWith("args", {});
  args_only.add_args("echo $FROM_IMAGE $OVERRIDDEN $OWN; pwd; id -u; id -g; id -G");
  auto* env = args_only.add_envs();
  env->set_key("OVERRIDDEN");
  env->set_value("container");
  env = args_only.add_envs();
  env->set_key("OWN");
  env->set_value("own");
  args_only.set_working_dir("/tmp");
  args_only.mutable_linux()->mutable_security_context()->set_run_as_username("app");
  args_only.mutable_linux()->mutable_security_context()->add_supplemental_groups(4242);
  std::string with_args = Run(*pod, args_only);
  // Neither: the image's entrypoint and cmd.
  std::string image_default = Run(*pod, ContainerWith("default", {}));
  // Numeric user and group.
  ContainerConfig numeric = ContainerWith("numeric", {"sh", "-c", "id -u; id -g"});
  numeric.mutable_linux()->mutable_security_context()->mutable_run_as_user()->set_value(4321);
  numeric.mutable_linux()->mutable_security_context()->mutable_run_as_group()->set_value(99);
  std::string numeric_id = Run(*pod, numeric);

  EXPECT_EQ(WaitForExit(with_args).exit_code(), 0);
  EXPECT_THAT(LogEntries(StatusOf(with_args).log_path()),
              ::testing::ElementsAre("stdout F image container own", "stdout F /tmp",
                                     "stdout F 1000", "stdout F 1000", "stdout F 1000 4242"));
  EXPECT_EQ(WaitForExit(image_default).exit_code(), 0);
  EXPECT_THAT(LogEntries(StatusOf(image_default).log_path()),
              ::testing::ElementsAre("stdout F from image cmd"));
  ContainerStatus with_args_status = StatusOf(with_args);
  EXPECT_EQ(with_args_status.user().linux().uid(), 1000);
  EXPECT_EQ(with_args_status.user().linux().gid(), 1000);
  EXPECT_THAT(with_args_status.user().linux().supplemental_groups(),
              ::testing::ElementsAre(1000, 4242));
  EXPECT_EQ(WaitForExit(numeric_id).exit_code(), 0);
  EXPECT_THAT(LogEntries(StatusOf(numeric_id).log_path()),
              ::testing::ElementsAre("stdout F 4321", "stdout F 99"));

  // A user name the image does not have.
  ContainerConfig unknown_user = ContainerWith("ghost", {"true"});
  unknown_user.mutable_linux()->mutable_security_context()->set_run_as_username("ghost");
  std::string id;
  grpc::Status status = Create(*pod, unknown_user, &id);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("ghost"));
}

TEST_F(PodsTest, TwoPodsReachEachOtherOnTheBridge) {
  absl::StatusOr<std::string> server_pod = RunPod(PodConfig("server"));
  ASSERT_TRUE(server_pod.ok()) << server_pod.status();
  absl::StatusOr<std::string> client_pod = RunPod(PodConfig("client"));
  ASSERT_TRUE(client_pod.ok()) << client_pod.status();
  std::string server =
      Run(*server_pod, ContainerWith("httpd", {"sh", "-c",
                                               "echo served-by-$(hostname) > /tmp/index.html; "
                                               "exec busybox httpd -f -p 8080 -h /tmp"}));
  std::string client = Run(*client_pod, ContainerWith("client", {"sleep", "1000"}));
  std::string server_ip = PodStatus(*server_pod).network().ip();
  ASSERT_FALSE(server_ip.empty());
  EXPECT_NE(server_ip, PodStatus(*client_pod).network().ip());
  ExecSyncResponse fetched;
  std::string url = absl::StrCat("http://", server_ip, ":8080/index.html");
  for (int attempt = 0; attempt < 50; ++attempt) {
    ASSERT_TRUE(Exec(client, {"busybox", "wget", "-q", "-O", "-", url}, &fetched, 10).ok());
    if (fetched.exit_code() == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(fetched.exit_code(), 0) << fetched.stderr();
  EXPECT_EQ(fetched.stdout(), "served-by-server\n");
  // Loopback is up in the pod's namespace: the server answers on 127.0.0.1 from its own pod.
  ExecSyncResponse local;
  ASSERT_TRUE(Exec(server, {"busybox", "wget", "-q", "-O", "-", "http://127.0.0.1:8080/index.html"},
                   &local, 10)
                  .ok());
  EXPECT_EQ(local.stdout(), "served-by-server\n") << local.stderr();
}

TEST_F(PodsTest, HostPortIsReachableOnLoopback) {
  PodSandboxConfig config = PodConfig("ported");
  std::random_device random;
  int host_port = 20000 + static_cast<int>(random() % 20000);
  auto* port = config.add_port_mappings();
  port->set_container_port(8080);
  port->set_host_port(host_port);
  port->set_host_ip("127.0.0.1");
  absl::StatusOr<std::string> pod = RunPod(config);
  ASSERT_TRUE(pod.ok()) << pod.status();
  Run(*pod, ContainerWith("httpd", {"sh", "-c",
                                    "echo through-hostport > /tmp/index.html; "
                                    "exec busybox httpd -f -p 8080 -h /tmp"}));
  std::string url = absl::StrCat("http://127.0.0.1:", host_port, "/index.html");
  CommandResult fetched;
  for (int attempt = 0; attempt < 50; ++attempt) {
    fetched = RunCommand({"curl", "-sS", "--max-time", "2", url});
    if (fetched.exit_code == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(fetched.exit_code, 0) << fetched.err;
  EXPECT_EQ(fetched.out, "through-hostport\n");
  ASSERT_TRUE(RemovePod(*pod).ok());
  // The mapping goes with the pod.
  fetched = RunCommand({"curl", "-sS", "--max-time", "2", url});
  EXPECT_NE(fetched.exit_code, 0);
}

TEST_F(PodsTest, KilledDaemonRestartsWithPodsRunningAndExitsRecorded) {
  absl::StatusOr<std::string> pod = RunPod(PodConfig("survivor"));
  ASSERT_TRUE(pod.ok()) << pod.status();
  std::string sleeper = Run(*pod, ContainerWith("sleeper", {"sleep", "1000"}));
  std::string ending = Run(*pod, ContainerWith("ending", {"sh", "-c", "sleep 1; exit 5"}));
  ASSERT_TRUE(kapald_->Process().Signal(SIGKILL).ok());
  ASSERT_TRUE(kapald_->Process().Wait(std::chrono::seconds(10)).ok());
  // "ending" exits while kapald is down: wait for its shim's record (at most 20 s).
  std::string exit_file = absl::StrCat(kapald_->StateDir(), "/containers/", ending, "/exit");
  for (int i = 0; i < 1000 && ::access(exit_file.c_str(), F_OK) != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_EQ(::access(exit_file.c_str(), F_OK), 0) << "the container did not exit";
  ASSERT_TRUE(kapald_->Restart().ok());
  stub_ = kapald_->RuntimeStub();
  EXPECT_EQ(PodStatus(*pod).state(), SANDBOX_READY);
  EXPECT_THAT(Containers(), SizeIs(2));
  EXPECT_EQ(StatusOf(sleeper).state(), CONTAINER_RUNNING);
  ContainerStatus ended = StatusOf(ending);
  EXPECT_EQ(ended.state(), CONTAINER_EXITED);
  EXPECT_EQ(ended.exit_code(), 5);
  ExecSyncResponse exec;
  ASSERT_TRUE(Exec(sleeper, {"echo", "still here"}, &exec).ok());
  EXPECT_EQ(exec.stdout(), "still here\n")
      << "exit code " << exec.exit_code() << ", stderr: " << exec.stderr();
}

TEST_F(PodsTest, AnExitIsRecordedWithoutAnyoneAsking) {
  absl::StatusOr<std::string> pod = RunPod(PodConfig("quiet"));
  ASSERT_TRUE(pod.ok()) << pod.status();
  std::string id = Run(*pod, ContainerWith("brief", {"sh", "-c", "exit 9"}));
  // No status call: the shim's note in the exit dir makes kapald record the exit by itself.
  std::string state;
  int exit_code = -1;
  for (int i = 0; i < 250 && state != "CONTAINER_EXITED"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    SQLite::Database db(kapald_->RootDir() + "/kapal.db", SQLite::OPEN_READONLY);
    SQLite::Statement row(db, "SELECT state, exit_code FROM containers WHERE id = ?");
    row.bind(1, id);
    if (row.executeStep()) {
      state = row.getColumn(0).getString();
      exit_code = row.getColumn(1).getInt();
    }
  }
  EXPECT_EQ(state, "CONTAINER_EXITED");
  EXPECT_EQ(exit_code, 9);
}

// kapald started with a descriptor open that it was not meant to have (as a test runner's log
// or a supervisor's pipe): it keeps it, but passes it to none of its children.
class InheritedDescriptorTest : public PodFixture {
 protected:
  void SetUp() override {
    ASSERT_EQ(::pipe(stray_), 0);  // no O_CLOEXEC: kapald inherits both ends
    struct stat about {};
    ASSERT_EQ(::fstat(stray_[0], &about), 0);
    stray_name_ = absl::StrCat("pipe:[", about.st_ino, "]");
    PodFixture::SetUp();
    // The test's own copies go; kapald's must not be the only ones left anywhere else.
    ::close(stray_[0]);
    ::close(stray_[1]);
  }
  // The descriptors of process PID that are the stray pipe.
  std::vector<std::string> StrayIn(pid_t pid) const {
    std::vector<std::string> found;
    std::string fd_dir = absl::StrCat("/proc/", pid, "/fd");
    absl::StatusOr<std::vector<std::string>> fds = base::ListDirectory(fd_dir);
    if (!fds.ok()) return {"cannot list " + fd_dir};
    for (const std::string& fd : *fds) {
      char target[256] = {};
      ssize_t n = ::readlink((fd_dir + "/" + fd).c_str(), target, sizeof target - 1);
      if (n > 0 && stray_name_ == std::string(target, static_cast<size_t>(n))) found.push_back(fd);
    }
    return found;
  }
  int stray_[2] = {-1, -1};
  std::string stray_name_;
};

TEST_F(InheritedDescriptorTest, NoShimOrContainerGetsWhatKapaldInherited) {
  EXPECT_THAT(StrayIn(kapald_->Process().Pid()), SizeIs(2)) << "kapald did not inherit the pipe";
  absl::StatusOr<std::string> pod = RunPod(PodConfig("inherit"));
  ASSERT_TRUE(pod.ok()) << pod.status();
  std::string id = Run(*pod, ContainerWith("sleeper", {"sleep", "1000"}));
  absl::StatusOr<std::string> shim_pid =
      base::ReadFile(absl::StrCat(kapald_->StateDir(), "/containers/", id, "/shim.pid"));
  ASSERT_TRUE(shim_pid.ok()) << shim_pid.status();
  int shim = 0;
  ASSERT_TRUE(absl::SimpleAtoi(*shim_pid, &shim)) << *shim_pid;
  EXPECT_THAT(StrayIn(shim), ::testing::IsEmpty()) << "the shim holds kapald's inherited pipe";
  ExecSyncResponse exec;
  ASSERT_TRUE(Exec(id, {"sh", "-c", "ls -l /proc/1/fd /proc/self/fd"}, &exec).ok());
  EXPECT_THAT(exec.stdout(), ::testing::Not(HasSubstr(stray_name_))) << exec.stdout();
  ASSERT_TRUE(StopPod(*pod).ok());
  ASSERT_TRUE(RemovePod(*pod).ok());
}

TEST_F(PodsTest, RemovingTheImageOfARunningContainerKeepsItRunning) {
  absl::StatusOr<std::string> pod = RunPod(PodConfig("orphan"));
  ASSERT_TRUE(pod.ok()) << pod.status();
  std::string id = Run(*pod, ContainerWith("c", {"sleep", "1000"}));
  RemoveImageRequest remove;
  remove.mutable_image()->set_image(image_);
  RemoveImageResponse removed;
  grpc::Status status = kapald_->ImageStub()->RemoveImage(LongContext().get(), remove, &removed);
  ASSERT_TRUE(status.ok()) << status.error_message();
  ExecSyncResponse exec;
  ASSERT_TRUE(Exec(id, {"ls", "/bin/busybox"}, &exec).ok());
  EXPECT_EQ(exec.stdout(), "/bin/busybox\n");
  EXPECT_EQ(StatusOf(id).state(), CONTAINER_RUNNING);
  // With the container gone, so are the image's layers.
  RemoveContainerRequest remove_container;
  remove_container.set_container_id(id);
  RemoveContainerResponse removed_container;
  ASSERT_TRUE(
      stub_->RemoveContainer(LongContext().get(), remove_container, &removed_container).ok());
  EXPECT_THAT(*base::ListDirectory(kapald_->RootDir() + "/snapshotter/snapshots"), SizeIs(0));
}

TEST_F(PodsTest, BadInputsGetTheirCodeAndChangeNothing) {
  PodSandboxConfig nameless = PodConfig("x");
  nameless.mutable_metadata()->clear_name();
  EXPECT_EQ(RunPod(nameless).status().code(), absl::StatusCode::kInvalidArgument);

  PodSandboxConfig config = PodConfig("bad");
  absl::StatusOr<std::string> pod = RunPod(config);
  ASSERT_TRUE(pod.ok()) << pod.status();
  absl::StatusOr<std::string> again = RunPod(config);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists) << again.status();

  PodSandboxConfig bad_sysctl = PodConfig("sysctl");
  (*bad_sysctl.mutable_linux()->mutable_sysctls())["vm.swappiness"] = "0";
  EXPECT_EQ(RunPod(bad_sysctl).status().code(), absl::StatusCode::kInvalidArgument);

  std::string id;
  ASSERT_TRUE(Create(*pod, ContainerWith("one", {"sleep", "100"}), &id).ok());
  grpc::Status status = Create(*pod, ContainerWith("one", {"sleep", "100"}), &id);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::ALREADY_EXISTS) << status.error_message();
  status = Create("no-such-pod", ContainerWith("two", {"true"}), &id);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
  ContainerConfig missing_image = ContainerWith("three", {"true"});
  missing_image.mutable_image()->set_image(registry_->Host() + "/not/pulled:1");
  status = Create(*pod, missing_image, &id);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
  ContainerConfig escaping = ContainerWith("four", {"true"});
  auto* mount = escaping.add_mounts();
  mount->set_host_path("/tmp/../etc");
  mount->set_container_path("/host-etc");
  status = Create(*pod, escaping, &id);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  ContainerConfig bad_log = ContainerWith("five", {"true"});
  bad_log.set_log_path("../../escape.log");
  status = Create(*pod, bad_log, &id);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();

  EXPECT_THAT(Containers(), SizeIs(1));
  ListPodSandboxResponse pods;
  ASSERT_TRUE(stub_->ListPodSandbox(Context().get(), {}, &pods).ok());
  EXPECT_EQ(pods.items_size(), 1);
  EXPECT_THAT(*base::ListDirectory(kapald_->StateDir() + "/containers"), SizeIs(1));

  ContainerStatusRequest unknown;
  unknown.set_container_id("feedface");
  ContainerStatusResponse unknown_status;
  EXPECT_EQ(stub_->ContainerStatus(Context().get(), unknown, &unknown_status).error_code(),
            grpc::StatusCode::NOT_FOUND);
  // Stops and removals of what is not there are idempotent (critest v1.36, kubelet's clean-up).
  StopContainerRequest stop_unknown;
  stop_unknown.set_container_id("feedface");
  StopContainerResponse stopped;
  EXPECT_TRUE(stub_->StopContainer(Context().get(), stop_unknown, &stopped).ok());
  RemoveContainerRequest remove_unknown;
  remove_unknown.set_container_id("feedface");
  RemoveContainerResponse removed;
  EXPECT_TRUE(stub_->RemoveContainer(Context().get(), remove_unknown, &removed).ok());
  StopPodSandboxRequest stop_pod;
  stop_pod.set_pod_sandbox_id("feedface");
  StopPodSandboxResponse pod_stopped;
  EXPECT_TRUE(stub_->StopPodSandbox(Context().get(), stop_pod, &pod_stopped).ok());
  RemovePodSandboxRequest remove_pod;
  remove_pod.set_pod_sandbox_id("feedface");
  RemovePodSandboxResponse pod_removed;
  EXPECT_TRUE(stub_->RemovePodSandbox(Context().get(), remove_pod, &pod_removed).ok());
  EXPECT_THAT(Containers(), SizeIs(1));
}

// The stop signal (KEP-4960): the config's, else the image's STOPSIGNAL, else SIGTERM; reported
// in ContainerStatus by CRI's names and sent by StopContainer.
TEST_F(PodsTest, StopSignalIsReportedAndSent) {
  absl::StatusOr<std::string> pod = RunPod(PodConfig("stop-signal"));
  ASSERT_TRUE(pod.ok()) << pod.status();
  runtime::v1::Signal usr1 = runtime::v1::RUNTIME_DEFAULT;
  ASSERT_TRUE(runtime::v1::Signal_Parse("SIGUSR1", &usr1));
  ContainerConfig trapping =
      ContainerWith("trapping", {"sh", "-c",
                                 "trap 'echo got usr1; exit 3' USR1; echo ready; "
                                 "while true; do sleep 0.1; done"});
  trapping.set_stop_signal(usr1);
  std::string id = Run(*pod, trapping);
  std::string plain = Run(*pod, ContainerWith("plain", {"sleep", "100"}));
  EXPECT_EQ(runtime::v1::Signal_Name(StatusOf(id).stop_signal()), "SIGUSR1");
  EXPECT_EQ(runtime::v1::Signal_Name(StatusOf(plain).stop_signal()), "SIGTERM");
  for (int i = 0; i < 100 && LogEntries(StatusOf(id).log_path()).empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  StopContainerRequest stop;
  stop.set_container_id(id);
  stop.set_timeout(10);
  StopContainerResponse stopped;
  ASSERT_TRUE(stub_->StopContainer(LongContext().get(), stop, &stopped).ok());
  ContainerStatus exited = StatusOf(id);
  EXPECT_EQ(exited.exit_code(), 3);
  EXPECT_THAT(LogEntries(exited.log_path()), ::testing::Contains("stdout F got usr1"));
}

// In-place pod resize (KEP-1287): the pod-level limits plus the overhead land on the pod's own
// cgroup (kubelet sizes the cgroup parents it gives itself), and bad requests change nothing.
TEST_F(PodsTest, PodResizeSetsThePodsOwnCgroup) {
  absl::StatusOr<std::string> pod = RunPod(PodConfig("resize"));
  ASSERT_TRUE(pod.ok()) << pod.status();
  Run(*pod, ContainerWith("sleeper", {"sleep", "100"}));
  UpdatePodSandboxResourcesRequest request;
  request.set_pod_sandbox_id(*pod);
  request.mutable_resources()->set_memory_limit_in_bytes(96 << 20);
  request.mutable_resources()->set_cpu_period(100000);
  request.mutable_resources()->set_cpu_quota(50000);
  request.mutable_overhead()->set_memory_limit_in_bytes(32 << 20);
  request.mutable_overhead()->set_cpu_quota(10000);
  UpdatePodSandboxResourcesResponse response;
  grpc::Status status = stub_->UpdatePodSandboxResources(Context().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  bool v2 = ::access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0;
  std::string memory =
      v2 ? absl::StrCat("/sys/fs/cgroup/kapal/", *pod, "/memory.max")
         : absl::StrCat("/sys/fs/cgroup/memory/kapal/", *pod, "/memory.limit_in_bytes");
  std::string cpu = v2 ? absl::StrCat("/sys/fs/cgroup/kapal/", *pod, "/cpu.max")
                       : absl::StrCat("/sys/fs/cgroup/cpu/kapal/", *pod, "/cpu.cfs_quota_us");
  EXPECT_EQ(base::ReadFile(memory).value_or(""), absl::StrCat(128 << 20, "\n"));
  EXPECT_EQ(base::ReadFile(cpu).value_or(""), v2 ? "60000 100000\n" : "60000\n");

  request.mutable_resources()->set_memory_limit_in_bytes(-1);
  EXPECT_EQ(stub_->UpdatePodSandboxResources(Context().get(), request, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(base::ReadFile(memory).value_or(""), absl::StrCat(128 << 20, "\n"));
  request.mutable_resources()->set_memory_limit_in_bytes(64 << 20);
  request.set_pod_sandbox_id("feedface");
  EXPECT_EQ(stub_->UpdatePodSandboxResources(Context().get(), request, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

// Image volumes (KEP-4639): an image's files read-only in the container, whole or by sub path;
// a sub path that leaves the image, or an image not pulled, is refused and leaves nothing.
TEST_F(PodsTest, ImageVolumesShowAnImageReadOnly) {
  absl::StatusOr<std::string> pod = RunPod(PodConfig("image-volume"));
  ASSERT_TRUE(pod.ok()) << pod.status();
  ContainerConfig config = ContainerWith(
      "reader", {"sh", "-c", "ls /image/bin/busybox /sub/busybox; touch /image/x || echo ro"});
  runtime::v1::Mount* whole = config.add_mounts();
  whole->set_container_path("/image");
  whole->mutable_image()->set_image(image_);
  runtime::v1::Mount* sub = config.add_mounts();
  sub->set_container_path("/sub");
  sub->mutable_image()->set_image(image_);
  sub->set_image_sub_path("bin");
  std::string id = Run(*pod, config);
  ContainerStatus exited = WaitForExit(id);
  EXPECT_EQ(exited.exit_code(), 0);
  EXPECT_THAT(LogEntries(exited.log_path()),
              ::testing::Contains(::testing::HasSubstr("/image/bin/busybox")));
  EXPECT_THAT(LogEntries(exited.log_path()), ::testing::Contains("stdout F ro"));
  // kubelet tells image volumes by the mount's image in the status.
  ASSERT_EQ(exited.mounts_size(), 2);
  EXPECT_EQ(exited.mounts(0).image().image(), image_);

  std::size_t bundles = base::ListDirectory(kapald_->StateDir() + "/containers")->size();
  for (const char* bad : {"../..", "/bin", "no/such/dir"}) {
    ContainerConfig escaping = ContainerWith("escaping", {"true"});
    runtime::v1::Mount* mount = escaping.add_mounts();
    mount->set_container_path("/image");
    mount->mutable_image()->set_image(image_);
    mount->set_image_sub_path(bad);
    std::string ignored;
    grpc::Status status = Create(*pod, escaping, &ignored);
    EXPECT_THAT(status.error_code(),
                ::testing::AnyOf(grpc::StatusCode::INVALID_ARGUMENT, grpc::StatusCode::NOT_FOUND))
        << bad << ": " << status.error_message();
  }
  ContainerConfig unpulled = ContainerWith("unpulled", {"true"});
  runtime::v1::Mount* mount = unpulled.add_mounts();
  mount->set_container_path("/image");
  mount->mutable_image()->set_image(registry_->Host() + "/not/pulled:1");
  std::string ignored;
  grpc::Status status = Create(*pod, unpulled, &ignored);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
  EXPECT_EQ(base::ListDirectory(kapald_->StateDir() + "/containers")->size(), bundles);
  EXPECT_THAT(Containers(), SizeIs(1));
}

// Every message of a Stream* rpc (KEP-5825), in order.
template <typename Response, typename Stub, typename Request, typename Call>
std::vector<Response> ReadStream(Stub* stub, Call call, const Request& request) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  std::unique_ptr<grpc::ClientReader<Response>> reader = (stub->*call)(context.get(), request);
  std::vector<Response> responses;
  Response response;
  while (reader->Read(&response)) responses.push_back(response);
  grpc::Status status = reader->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  return responses;
}

// The Stream* list rpcs give what the List* ones give, filters included.
TEST_F(PodsTest, StreamedListsMatchTheLists) {
  absl::StatusOr<std::string> first = RunPod(PodConfig("first"));
  absl::StatusOr<std::string> second = RunPod(PodConfig("second"));
  ASSERT_TRUE(first.ok() && second.ok());
  std::string one = Run(*first, ContainerWith("one", {"sleep", "100"}));
  Run(*second, ContainerWith("two", {"sleep", "100"}));
  using Service = runtime::v1::RuntimeService::Stub;

  StreamPodSandboxesRequest pods;
  std::set<std::string> streamed;
  for (const auto& response :
       ReadStream<StreamPodSandboxesResponse>(stub_.get(), &Service::StreamPodSandboxes, pods)) {
    for (const auto& pod : response.pod_sandboxes()) streamed.insert(pod.id());
  }
  EXPECT_EQ(streamed, (std::set<std::string>{*first, *second}));
  (*pods.mutable_filter()->mutable_label_selector())["app"] = "first";
  auto filtered =
      ReadStream<StreamPodSandboxesResponse>(stub_.get(), &Service::StreamPodSandboxes, pods);
  ASSERT_EQ(filtered.size(), 1u);
  ASSERT_EQ(filtered[0].pod_sandboxes_size(), 1);
  EXPECT_EQ(filtered[0].pod_sandboxes(0).id(), *first);

  StreamContainersRequest containers;
  containers.mutable_filter()->set_pod_sandbox_id(*first);
  auto in_first =
      ReadStream<StreamContainersResponse>(stub_.get(), &Service::StreamContainers, containers);
  ASSERT_EQ(in_first.size(), 1u);
  ASSERT_EQ(in_first[0].containers_size(), 1);
  EXPECT_EQ(in_first[0].containers(0).id(), one);

  StreamContainerStatsRequest container_stats;
  container_stats.mutable_filter()->set_id(one);
  auto stats = ReadStream<StreamContainerStatsResponse>(stub_.get(), &Service::StreamContainerStats,
                                                        container_stats);
  ASSERT_EQ(stats.size(), 1u);
  ASSERT_EQ(stats[0].container_stats_size(), 1);
  EXPECT_EQ(stats[0].container_stats(0).attributes().id(), one);
  auto pod_stats = ReadStream<StreamPodSandboxStatsResponse>(
      stub_.get(), &Service::StreamPodSandboxStats, StreamPodSandboxStatsRequest());
  int streamed_pod_stats = 0;
  for (const auto& response : pod_stats) streamed_pod_stats += response.pod_sandbox_stats_size();
  EXPECT_EQ(streamed_pod_stats, 2);
  auto pod_metrics = ReadStream<StreamPodSandboxMetricsResponse>(
      stub_.get(), &Service::StreamPodSandboxMetrics, StreamPodSandboxMetricsRequest());
  std::set<std::string> measured_pods;
  for (const auto& response : pod_metrics) {
    for (const auto& metrics : response.pod_sandbox_metrics()) {
      measured_pods.insert(metrics.pod_sandbox_id());
      EXPECT_GT(metrics.metrics_size(), 0);
    }
  }
  EXPECT_EQ(measured_pods, (std::set<std::string>{*first, *second}));

  auto images = ReadStream<StreamImagesResponse>(kapald_->ImageStub().get(),
                                                 &runtime::v1::ImageService::Stub::StreamImages,
                                                 StreamImagesRequest());
  ASSERT_EQ(images.size(), 1u);
  EXPECT_GE(images[0].images_size(), 1);
}

TEST_F(PodsTest, ListFiltersByStateLabelAndPod) {
  absl::StatusOr<std::string> first = RunPod(PodConfig("first"));
  absl::StatusOr<std::string> second = RunPod(PodConfig("second"));
  ASSERT_TRUE(first.ok() && second.ok());
  std::string running = Run(*first, ContainerWith("run", {"sleep", "100"}));
  std::string created;
  ASSERT_TRUE(Create(*second, ContainerWith("made", {"sleep", "100"}), &created).ok());
  ASSERT_TRUE(StopPod(*second).ok());

  ListPodSandboxRequest by_label;
  (*by_label.mutable_filter()->mutable_label_selector())["app"] = "first";
  ListPodSandboxResponse pods;
  ASSERT_TRUE(stub_->ListPodSandbox(Context().get(), by_label, &pods).ok());
  ASSERT_EQ(pods.items_size(), 1);
  EXPECT_EQ(pods.items(0).id(), *first);
  ListPodSandboxRequest ready;
  ready.mutable_filter()->mutable_state()->set_state(SANDBOX_READY);
  ASSERT_TRUE(stub_->ListPodSandbox(Context().get(), ready, &pods).ok());
  ASSERT_EQ(pods.items_size(), 1);
  EXPECT_EQ(pods.items(0).id(), *first);

  ListContainersRequest by_state;
  by_state.mutable_filter()->mutable_state()->set_state(CONTAINER_RUNNING);
  ListContainersResponse containers;
  ASSERT_TRUE(stub_->ListContainers(Context().get(), by_state, &containers).ok());
  ASSERT_EQ(containers.containers_size(), 1);
  EXPECT_EQ(containers.containers(0).id(), running);
  ListContainersRequest by_pod;
  by_pod.mutable_filter()->set_pod_sandbox_id(*second);
  ASSERT_TRUE(stub_->ListContainers(Context().get(), by_pod, &containers).ok());
  ASSERT_EQ(containers.containers_size(), 1);
  EXPECT_EQ(containers.containers(0).id(), created);
  // Stopping the pod stopped its created-only container too.
  EXPECT_EQ(containers.containers(0).state(), CONTAINER_EXITED);
}

TEST_F(PodsTest, ExecTimeoutAndLogReopen) {
  absl::StatusOr<std::string> pod = RunPod(PodConfig("ticker"));
  ASSERT_TRUE(pod.ok()) << pod.status();
  std::string id =
      Run(*pod, ContainerWith("ticker", {"sh", "-c", "while true; do echo tick; sleep 0.1; done"}));
  ExecSyncResponse exec;
  grpc::Status timed_out = Exec(id, {"sleep", "30"}, &exec, 1);
  EXPECT_EQ(timed_out.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED)
      << timed_out.error_message();

  std::string log = StatusOf(id).log_path();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ASSERT_EQ(std::rename(log.c_str(), (log + ".1").c_str()), 0);
  ReopenContainerLogRequest reopen;
  reopen.set_container_id(id);
  ReopenContainerLogResponse reopened;
  grpc::Status status = stub_->ReopenContainerLog(Context().get(), reopen, &reopened);
  ASSERT_TRUE(status.ok()) << status.error_message();
  // New ticks go to a new file (polled: at most 5 s on a loaded machine).
  for (int i = 0; i < 250 && LogEntries(log).empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_THAT(LogEntries(log), ::testing::Contains("stdout F tick"));
  EXPECT_THAT(LogEntries(log + ".1"), ::testing::Contains("stdout F tick"));
}

TEST_F(PodsTest, CrunHandlerRunsContainersWhereTheHostAllowsIt) {
  if (base::FindExecutable("crun").status().code() == absl::StatusCode::kNotFound) {
    GTEST_SKIP() << "crun is not installed";
  }
  RunPodSandboxRequest request;
  *request.mutable_config() = PodConfig("crun-pod");
  request.set_runtime_handler("crun");
  RunPodSandboxResponse response;
  grpc::Status status = stub_->RunPodSandbox(LongContext().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  PodSandboxStatus pod = PodStatus(response.pod_sandbox_id());
  EXPECT_EQ(pod.runtime_handler(), "crun");
  std::string id;
  status =
      Create(response.pod_sandbox_id(), ContainerWith("c", {"sh", "-c", "echo crun; exit 2"}), &id);
  if (!status.ok() && absl::StrContains(status.error_message(), "hybrid")) {
    // crun 1.8 refuses cgroup v1 "hybrid" hosts (v2 mounted at /sys/fs/cgroup/unified).
    GTEST_SKIP() << "crun cannot run containers on this host: " << status.error_message();
  }
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_TRUE(Start(id).ok());
  ContainerStatus exited = WaitForExit(id);
  EXPECT_EQ(exited.exit_code(), 2);
  EXPECT_THAT(LogEntries(exited.log_path()), ::testing::ElementsAre("stdout F crun"));
}

TEST_F(PodsTest, UnknownRuntimeHandlerIsNotFound) {
  RunPodSandboxRequest request;
  *request.mutable_config() = PodConfig("nohandler");
  request.set_runtime_handler("kata");
  RunPodSandboxResponse response;
  grpc::Status status = stub_->RunPodSandbox(LongContext().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(status.error_message(), HasSubstr("kata"));
}

TEST_F(PodsTest, PodsStartInParallelAndANameIsTakenOnce) {
  constexpr int kPods = 6;
  std::vector<absl::StatusOr<std::string>> pods(kPods, absl::UnknownError("not run"));
  std::vector<std::thread> threads;
  for (int i = 0; i < kPods; ++i) {
    threads.emplace_back([&, i] {
      // Pods 0 and 1 ask for the same name: exactly one of them may get it.
      pods[i] = RunPod(PodConfig(i < 2 ? "twin" : absl::StrCat("parallel-", i)));
    });
  }
  for (std::thread& thread : threads) thread.join();
  int twins = 0;
  std::set<std::string> ips;
  for (int i = 0; i < kPods; ++i) {
    if (i < 2 && !pods[i].ok()) {
      EXPECT_EQ(pods[i].status().code(), absl::StatusCode::kAlreadyExists) << pods[i].status();
      continue;
    }
    ASSERT_TRUE(pods[i].ok()) << pods[i].status();
    if (i < 2) ++twins;
    ips.insert(PodStatus(*pods[i]).network().ip());
  }
  EXPECT_EQ(twins, 1);
  EXPECT_EQ(ips.size(), static_cast<size_t>(kPods - 1));
}

TEST_F(PodsTest, PodsComeAndGoInParallelWhileOthersStart) {
  // Workers each run pods with a container and remove them again, so pods start while others
  // are removed: a removal must never take a directory (the shared cgroup parent /kapal, a
  // snapshot, the bridge) from under a pod that is starting.
  constexpr int kWorkers = 3;
  constexpr int kRounds = 4;
  std::mutex mutex;
  std::vector<std::string> failures;
  std::vector<std::thread> threads;
  for (int worker = 0; worker < kWorkers; ++worker) {
    threads.emplace_back([&, worker] {
      for (int round = 0; round < kRounds; ++round) {
        std::string name = absl::StrCat("churn-", worker, "-", round);
        auto fail = [&](const std::string& what) {
          std::lock_guard<std::mutex> lock(mutex);
          failures.push_back(absl::StrCat(name, ": ", what));
        };
        absl::StatusOr<std::string> pod = RunPod(PodConfig(name));
        if (!pod.ok()) {
          fail(pod.status().ToString());
          continue;
        }
        std::string id;
        grpc::Status status = Create(*pod, ContainerWith("c", {"sleep", "1000"}), &id);
        if (status.ok()) status = Start(id);
        if (!status.ok()) fail(status.error_message());
        status = StopPod(*pod);
        if (!status.ok()) fail(status.error_message());
        status = RemovePod(*pod);
        if (!status.ok()) fail(status.error_message());
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_THAT(failures, ::testing::IsEmpty());
  EXPECT_THAT(Containers(), ::testing::IsEmpty());
  // The pods' own cgroups are gone; the shared parent stays for the next pod (removing it
  // raced with runc making a new pod's cgroup: ENOENT for "mkdir .../kapal/POD").
  if (::access("/sys/fs/cgroup/memory", F_OK) == 0) {
    EXPECT_EQ(::access("/sys/fs/cgroup/memory/kapal", F_OK), 0);
  } else {
    EXPECT_EQ(::access("/sys/fs/cgroup/kapal", F_OK), 0);
  }
}

TEST_F(PodsTest, ContainersOfAPodShareOnePidNamespaceWhenAsked) {
  absl::StatusOr<std::string> shared = RunPod(PodConfig("shared-pid"));  // pid: POD
  ASSERT_TRUE(shared.ok()) << shared.status();
  std::string sleeper = Run(*shared, ContainerWith("sleeper", {"sleep", "1000"}));
  std::string looker = Run(*shared, ContainerWith("looker", {"sleep", "1001"}));
  ExecSyncResponse exec;
  // PID 1 is the pod's infra process, and both sleeps are visible from either container.
  ASSERT_TRUE(Exec(looker, {"sh", "-c", "cat /proc/1/comm; cat /proc/[0-9]*/comm"}, &exec).ok());
  std::vector<std::string> names = absl::StrSplit(exec.stdout(), '\n', absl::SkipEmpty());
  ASSERT_FALSE(names.empty()) << exec.stderr();
  EXPECT_EQ(names[0], "kapal-infra");
  EXPECT_EQ(std::count(names.begin(), names.end(), "sleep"), 2) << exec.stdout();

  PodSandboxConfig separate_config = PodConfig("own-pid");
  separate_config.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
      CONTAINER);
  absl::StatusOr<std::string> separate = RunPod(separate_config);
  ASSERT_TRUE(separate.ok()) << separate.status();
  ContainerConfig own = ContainerWith("alone", {"sleep", "1000"});
  own.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(CONTAINER);
  std::string alone = Run(*separate, own);
  ASSERT_TRUE(Exec(alone, {"cat", "/proc/1/cmdline"}, &exec).ok());
  EXPECT_EQ(exec.stdout(), std::string("sleep\0"
                                       "1000\0",
                                       11));

  // Stopping the pod ends its infra process (other tests' pods have their own).
  absl::StatusOr<std::string> infra_pid =
      base::ReadFile(absl::StrCat(kapald_->StateDir(), "/pods/", *shared, "/infra.pid"));
  ASSERT_TRUE(infra_pid.ok()) << infra_pid.status();
  std::string status_file = absl::StrCat("/proc/", *infra_pid, "/status");
  EXPECT_THAT(base::ReadFile(status_file).value_or(""), HasSubstr("kapal-infra"));
  ASSERT_TRUE(StopPod(*shared).ok());
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    // Gone, or a zombie until init reaps it.
    std::string status = base::ReadFile(status_file).value_or("");
    gone = status.empty() || absl::StrContains(status, "State:\tZ");
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_TRUE(gone);
  // Its containers ended with it (the kernel's SIGKILL when the namespace's init ended), and
  // so did the one in its own PID namespace in the other pod (killed one by one).
  for (const std::string& id : {sleeper, looker}) {
    ContainerStatus ended = StatusOf(id);
    EXPECT_EQ(ended.state(), runtime::v1::CONTAINER_EXITED) << id;
    EXPECT_EQ(ended.exit_code(), 137) << id;
  }
  ASSERT_TRUE(StopPod(*separate).ok());
  ContainerStatus alone_ended = StatusOf(alone);
  EXPECT_EQ(alone_ended.state(), runtime::v1::CONTAINER_EXITED);
  EXPECT_EQ(alone_ended.exit_code(), 137);
}

TEST_F(PodsTest, HostNetworkPodUsesTheHostsNetworkAndName) {
  PodSandboxConfig config = PodConfig("hostnet");
  config.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_network(
      NODE);
  absl::StatusOr<std::string> pod = RunPod(config);
  ASSERT_TRUE(pod.ok()) << pod.status();
  EXPECT_EQ(PodStatus(*pod).network().ip(), "");
  std::string id = Run(*pod, ContainerWith("c", {"sleep", "1000"}));
  char host_name[256] = {};
  ::gethostname(host_name, sizeof host_name - 1);
  ExecSyncResponse exec;
  ASSERT_TRUE(Exec(id, {"sh", "-c", "hostname; busybox ls /sys/class/net"}, &exec).ok());
  EXPECT_THAT(exec.stdout(), ::testing::StartsWith(std::string(host_name) + "\n"));
  EXPECT_THAT(exec.stdout(), HasSubstr("lo"));
  EXPECT_THAT(exec.stdout(), ::testing::Not(HasSubstr(cni_->Bridge())));
}

TEST_F(PodsTest, TerminalContainerWritesThroughTheConsole) {
  absl::StatusOr<std::string> pod = RunPod(PodConfig("tty"));
  ASSERT_TRUE(pod.ok()) << pod.status();
  ContainerConfig config = ContainerWith("tty", {"sh", "-c", "[ -t 1 ] && echo on-a-terminal"});
  config.set_tty(true);
  std::string id = Run(*pod, config);
  ContainerStatus exited = WaitForExit(id);
  EXPECT_EQ(exited.exit_code(), 0);
  // The terminal turns "\n" into "\r\n".
  EXPECT_THAT(LogEntries(exited.log_path()), ::testing::ElementsAre("stdout F on-a-terminal\r"));
}

TEST_F(PodsTest, MemoryLimitKillIsReportedAsOomKilled) {
  absl::StatusOr<std::string> pod = RunPod(PodConfig("oom"));
  ASSERT_TRUE(pod.ok()) << pod.status();
  std::string id = Run(*pod, MemoryHog("hog"));
  ContainerStatus exited = WaitForExit(id);
  EXPECT_EQ(exited.reason(), "OOMKilled") << "exit code " << exited.exit_code();
  EXPECT_NE(exited.exit_code(), 0);
  EXPECT_EQ(kapald_->ScrapeValue("kapal_container_exits_total", {"reason=\"OOMKilled\""}), 1);
}

TEST_F(PodsTest, CgroupParentAndLimitsFromTheConfigs) {
  PodSandboxConfig config = PodConfig("cgroups");
  std::string parent = absl::StrCat("/kapal-test-", ::getpid());
  config.mutable_linux()->set_cgroup_parent(parent);
  absl::StatusOr<std::string> pod = RunPod(config);
  ASSERT_TRUE(pod.ok()) << pod.status();
  ContainerConfig limited = ContainerWith("limited", {"sleep", "1000"});
  limited.mutable_linux()->mutable_resources()->set_memory_limit_in_bytes(64 * 1024 * 1024);
  limited.mutable_linux()->mutable_resources()->set_cpu_shares(512);
  std::string id = Run(*pod, limited);
  // cgroup v1 (this host's layout) or v2.
  std::string v1 = absl::StrCat("/sys/fs/cgroup/memory", parent, "/", id, "/memory.limit_in_bytes");
  std::string v2 = absl::StrCat("/sys/fs/cgroup", parent, "/", id, "/memory.max");
  absl::StatusOr<std::string> limit = base::ReadFile(v1);
  if (!limit.ok()) limit = base::ReadFile(v2);
  ASSERT_TRUE(limit.ok()) << limit.status();
  EXPECT_EQ(*limit, "67108864\n");
  ASSERT_TRUE(RemovePod(*pod).ok());
  // The parent is the caller's (kubelet's); the container's own cgroup is gone.
  EXPECT_FALSE(base::ReadFile(v1).ok() || base::ReadFile(v2).ok());
  if (auto hierarchies = base::ListDirectory("/sys/fs/cgroup"); hierarchies.ok()) {
    for (const std::string& hierarchy : *hierarchies) {
      ::rmdir(absl::StrCat("/sys/fs/cgroup/", hierarchy, parent).c_str());
    }
  }
  ::rmdir(absl::StrCat("/sys/fs/cgroup", parent).c_str());
}

TEST_F(PodsTest, DevicesAndMountsReachTheContainer) {
  absl::StatusOr<std::string> pod = RunPod(PodConfig("devices"));
  ASSERT_TRUE(pod.ok()) << pod.status();
  std::string shared = kapald_->StateDir() + "/shared-data";
  ContainerConfig config =
      ContainerWith("c", {"sh", "-c", "echo written > /data/new/file; echo x > /dev/kapal-null"});
  auto* device = config.add_devices();
  device->set_host_path("/dev/null");
  device->set_container_path("/dev/kapal-null");
  device->set_permissions("rw");
  auto* mount = config.add_mounts();
  mount->set_host_path(shared);  // missing: created as kubelet expects
  mount->set_container_path("/data/new");
  std::string id = Run(*pod, config);
  ContainerStatus exited = WaitForExit(id);
  EXPECT_EQ(exited.exit_code(), 0) << base::ReadFile(exited.log_path()).value_or("");
  EXPECT_EQ(base::ReadFile(shared + "/file").value_or(""), "written\n");
  ASSERT_EQ(exited.mounts_size(), 1);
  EXPECT_EQ(exited.mounts(0).container_path(), "/data/new");
  base::RemoveTree(shared).IgnoreError();
}

TEST_F(PodsTest, KapalctlPodAndContainerCommands) {
  std::string dir = kapald_->StateDir() + "/../configs";
  ASSERT_TRUE(base::MakeDirectories(dir, 0755).ok());
  // crictl's file formats: JSON for the pod, YAML for the container.
  ASSERT_TRUE(base::WriteFileAtomically(dir + "/pod.json",
                                        absl::StrCat(R"({
    "metadata": {"name": "ctl-pod", "namespace": "default", "uid": "ctl-uid"},
    "log_directory": ")",
                                                     logs_, R"(/ctl", "labels": {"tier": "ctl"}})"))
                  .ok());
  ASSERT_TRUE(base::WriteFileAtomically(dir + "/container.yaml", absl::StrCat(R"(metadata:
  name: worker
image:
  image: )",
                                                                              image_, R"(
command: ["sh", "-c", "echo started; sleep 1000"]
log_path: worker.log
envs:
  - key: GREETING
    value: "hello there"
)"))
                  .ok());
  CommandResult result = kapald_->Kapalctl({"runp", dir + "/pod.json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::string pod = std::string(absl::StripTrailingAsciiWhitespace(result.out));
  result = kapald_->Kapalctl({"create", pod, dir + "/container.yaml", dir + "/pod.json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::string container = std::string(absl::StripTrailingAsciiWhitespace(result.out));
  ASSERT_EQ(kapald_->Kapalctl({"start", container}).exit_code, 0);

  result = kapald_->Kapalctl({"pods"});
  EXPECT_THAT(result.out, HasSubstr("ctl-pod"));
  EXPECT_THAT(result.out, HasSubstr("Ready"));
  EXPECT_EQ(kapald_->Kapalctl({"pods", "-q"}).out, pod + "\n");
  result = kapald_->Kapalctl({"ps", "-o", "json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  auto listed = nlohmann::json::parse(result.out);
  ASSERT_EQ(listed["containers"].size(), 1u);
  EXPECT_EQ(listed["containers"][0]["id"], container);
  EXPECT_EQ(listed["containers"][0]["state"], "CONTAINER_RUNNING");
  EXPECT_THAT(kapald_->Kapalctl({"ps"}).out, HasSubstr("worker"));

  result = kapald_->Kapalctl({"exec", container, "sh", "-c", "echo $GREETING; exit 3"});
  EXPECT_EQ(result.exit_code, 3);
  EXPECT_EQ(result.out, "hello there\n");
  result = kapald_->Kapalctl({"inspect", container});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(nlohmann::json::parse(result.out)["status"]["state"], "CONTAINER_RUNNING");
  result = kapald_->Kapalctl({"inspectp", "-o", "yaml", pod});
  EXPECT_THAT(result.out, HasSubstr("SANDBOX_READY"));
  for (int i = 0; i < 100 && kapald_->Kapalctl({"logs", container}).out.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(kapald_->Kapalctl({"logs", container}).out, "started\n");
  EXPECT_EQ(kapald_->Kapalctl({"logs", "--tail", "0", container}).out, "");
  EXPECT_EQ(kapald_->Kapalctl({"logs", "--tail", "1", container}).out, "started\n");
  EXPECT_EQ(kapald_->Kapalctl({"logs", "--since", "1h", container}).out, "started\n");
  EXPECT_EQ(kapald_->Kapalctl({"logs", "--since", "2000-01-01T00:00:00Z", container}).out,
            "started\n");
  EXPECT_NE(kapald_->Kapalctl({"logs", "--since", "yesterday", container}).exit_code, 0);
  EXPECT_THAT(kapald_->Kapalctl({"logs", "-t", container}).out, HasSubstr("Z started"));

  result = kapald_->Kapalctl({"rm", container});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_THAT(result.err, HasSubstr("--force"));
  ASSERT_EQ(kapald_->Kapalctl({"stop", container}).exit_code, 0);
  EXPECT_THAT(kapald_->Kapalctl({"ps", "-a"}).out, HasSubstr("Exited"));
  ASSERT_EQ(kapald_->Kapalctl({"rm", container}).exit_code, 0);
  ASSERT_EQ(kapald_->Kapalctl({"stopp", pod}).exit_code, 0);
  ASSERT_EQ(kapald_->Kapalctl({"rmp", pod}).exit_code, 0);
  EXPECT_EQ(kapald_->Kapalctl({"pods", "-q"}).out, "");
  result = kapald_->Kapalctl({"inspect", container});
  EXPECT_NE(result.exit_code, 0);
  EXPECT_THAT(result.err, HasSubstr("NOT_FOUND"));
}

TEST_F(PodsTest, KapalctlRunStreamsOutputAndExitsWithTheContainersCode) {
  CommandResult result = kapald_->Kapalctl(
      {"run", "--rm", "-e", "WHO=kapal", "--name", "once", image_, "echo hi $WHO; exit 4"});
  EXPECT_EQ(result.exit_code, 4) << result.err;
  EXPECT_EQ(result.out, "hi kapal\n");
  EXPECT_EQ(kapald_->Kapalctl({"pods", "-q"}).out, "");  // --rm removed the pod

  result = kapald_->Kapalctl({"run", "-d", image_, "sleep 1000"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::string id = std::string(absl::StripTrailingAsciiWhitespace(result.out));
  EXPECT_EQ(StatusOf(id).state(), CONTAINER_RUNNING);
}

}  // namespace
}  // namespace kapal::testing
