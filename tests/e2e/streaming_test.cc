// Exec, attach and port-forward through kapald's streaming server, with the clients people use:
// crictl (SPDY, through a pseudo-terminal), a WebSocket client of Debian's (python3-websocket),
// and kapalctl's interactive verbs.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/child_process.h"
#include "base/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fixtures/net.h"
#include "tests/fixtures/pod_fixture.h"
#include "tests/fixtures/terminal.h"

namespace kapal::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kWebSocketClient[] = KAPAL_SOURCE_DIR "/tests/e2e/ws_client.py";
constexpr char kCrictl[] = KAPAL_SOURCE_DIR "/../shared/critest/bin/crictl";

base::ChildOptions LogTo(const std::string& path) {
  base::ChildOptions options;
  options.stdout_path = path;
  options.stderr_path = path;
  return options;
}

int OpenFdCount(int pid) {
  absl::StatusOr<std::vector<std::string>> fds =
      base::ListDirectory(absl::StrCat("/proc/", pid, "/fd"));
  return fds.ok() ? static_cast<int>(fds->size()) : -1;
}

class StreamingTest : public PodFixture {
 protected:
  void SetUp() override {
    PodFixture::SetUp();
    if (HasFatalFailure()) return;
    absl::StatusOr<std::string> pod = RunPod(PodConfig("streaming"));
    ASSERT_TRUE(pod.ok()) << pod.status();
    pod_ = *pod;
  }

  std::string Sleeper() { return Run(pod_, ContainerWith("sleeper", {"sleep", "3600"})); }

  std::vector<std::string> Crictl(std::vector<std::string> args) {
    std::vector<std::string> argv = {
        kCrictl, "--config", "/dev/null", "-r", kapald_->Endpoint(), "--timeout", "20s"};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  std::vector<std::string> Kapalctl(std::vector<std::string> args) {
    std::vector<std::string> argv = {KAPALCTL_BINARY, "--config", "/dev/null", "-r",
                                     kapald_->Endpoint()};
    argv.insert(argv.end(), args.begin(), args.end());
    return argv;
  }

  static bool HaveCrictl() { return ::access(kCrictl, X_OK) == 0; }

  std::string ExecUrl(const std::string& id, std::vector<std::string> cmd, bool in, bool tty) {
    ExecRequest request;
    request.set_container_id(id);
    for (const std::string& part : cmd) request.add_cmd(part);
    request.set_stdin(in);
    request.set_stdout(true);
    request.set_stderr(!tty);
    request.set_tty(tty);
    ExecResponse response;
    grpc::Status status = stub_->Exec(Context().get(), request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return response.url();
  }

  nlohmann::json WebSocket(const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"/usr/bin/python3", kWebSocketClient};
    argv.insert(argv.end(), args.begin(), args.end());
    CommandResult ran = RunCommand(argv, std::chrono::seconds(60));
    EXPECT_EQ(ran.exit_code, 0) << ran.err;
    return nlohmann::json::parse(ran.out, nullptr, false);
  }

  // Names of the processes in the container (its own PID namespace): /proc/*/comm.
  std::vector<std::string> ProcessNames(const std::string& id) {
    ExecSyncResponse listed;
    EXPECT_TRUE(Exec(id, {"sh", "-c", "cat /proc/[0-9]*/comm"}, &listed).ok());
    return absl::StrSplit(listed.stdout(), '\n', absl::SkipEmpty());
  }

  // Runs a busybox httpd serving PAGE on port 8080 of the pod, forwards a free local port to it
  // with CLIENT (crictl or kapalctl), and makes CLIENTS parallel connections of ROUNDS GETs each
  // through it: the number of answers that were PAGE.
  int ForwardedRequests(const std::string& client, const std::string& page, int clients,
                        int rounds) {
    Run(pod_, ContainerWith(page, {"sh", "-c",
                                   absl::StrCat("mkdir -p /tmp/www && echo ", page,
                                                " > /tmp/www/index.html && exec busybox httpd -f "
                                                "-p 8080 -h /tmp/www")}));
    int local = FreePort();
    std::vector<std::string> args = {"port-forward", pod_, absl::StrCat(local, ":8080")};
    absl::StatusOr<base::ChildProcess> forward = base::ChildProcess::Spawn(
        client == "crictl" ? Crictl(args) : Kapalctl(args),
        LogTo(absl::StrCat(kapald_->StateDir(), "/", client, "-forward.log")));
    EXPECT_TRUE(forward.ok()) << forward.status();
    if (!forward.ok() || !WaitForHttp(local, "/", page)) return -1;
    std::atomic<int> served{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < clients; ++i) {
      threads.emplace_back([&] {
        for (int round = 0; round < rounds; ++round) {
          if (absl::StrContains(HttpGet(local, "/"), page)) ++served;
        }
      });
    }
    for (std::thread& thread : threads) thread.join();
    forward->Kill();
    return served.load();
  }

  std::string pod_;
};

TEST_F(StreamingTest, CrictlExecInATerminalFollowsResizeAndReportsTheExitCode) {
  if (!HaveCrictl()) GTEST_SKIP() << "crictl not found at " << kCrictl << " (../shared absent)";
  std::string id = Sleeper();
  absl::StatusOr<std::unique_ptr<Terminal>> terminal =
      Terminal::Start(Crictl({"exec", "-it", id, "sh"}), 100, 30);
  ASSERT_TRUE(terminal.ok()) << terminal.status();
  Terminal& tty = **terminal;
  ASSERT_TRUE(tty.WaitFor("# ")) << tty.Screen();
  tty.Type("busybox stty size; tty\r");
  ASSERT_TRUE(tty.WaitFor("30 100")) << tty.Screen();
  EXPECT_TRUE(tty.WaitFor("/dev/pts/")) << tty.Screen();
  tty.Resize(120, 40);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  tty.Type("busybox stty size\r");
  EXPECT_TRUE(tty.WaitFor("40 120")) << tty.Screen();
  tty.Type("exit 3\r");
  EXPECT_TRUE(tty.WaitFor("exit code 3")) << tty.Screen();
  absl::StatusOr<base::ExitInfo> ended = tty.Wait(std::chrono::seconds(20));
  ASSERT_TRUE(ended.ok()) << ended.status() << tty.Screen();
}

TEST_F(StreamingTest, CrictlAttachToATerminalWhileTheLogGoesOn) {
  if (!HaveCrictl()) GTEST_SKIP() << "crictl not found at " << kCrictl << " (../shared absent)";
  ContainerConfig config = ContainerWith("shell", {"sh"});
  config.set_stdin(true);
  config.set_tty(true);
  std::string id = Run(pod_, config);
  absl::StatusOr<std::unique_ptr<Terminal>> terminal =
      Terminal::Start(Crictl({"attach", "-i", "-t", id}), 90, 25);
  ASSERT_TRUE(terminal.ok()) << terminal.status();
  Terminal& tty = **terminal;
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  tty.Type("echo attached-$((40+2))\r");
  ASSERT_TRUE(tty.WaitFor("attached-42")) << tty.Screen();
  tty.Type("busybox stty size\r");
  EXPECT_TRUE(tty.WaitFor("25 90")) << tty.Screen();
  tty.Resize(110, 35);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  tty.Type("busybox stty size\r");
  EXPECT_TRUE(tty.WaitFor("35 110")) << tty.Screen();
  tty.Type("exit\r");
  absl::StatusOr<base::ExitInfo> ended = tty.Wait(std::chrono::seconds(20));
  ASSERT_TRUE(ended.ok()) << ended.status() << tty.Screen();
  EXPECT_TRUE(ended->exited && ended->exit_code == 0) << ended->Describe() << tty.Screen();
  ContainerStatus exited = WaitForExit(id);
  EXPECT_EQ(exited.exit_code(), 0);
  // What went to the attached terminal went to the CRI log too.
  std::string log;
  for (const std::string& entry : LogEntries(exited.log_path())) absl::StrAppend(&log, entry, "\n");
  EXPECT_THAT(log, HasSubstr("attached-42"));
}

TEST_F(StreamingTest, AttachWithStdinOnceEndsTheContainersInputWithTheSession) {
  if (!HaveCrictl()) GTEST_SKIP() << "crictl not found at " << kCrictl << " (../shared absent)";
  ContainerConfig config = ContainerWith("cat", {"cat"});
  config.set_stdin(true);
  config.set_stdin_once(true);
  std::string id = Run(pod_, config);
  absl::StatusOr<base::CommandResult> attached = base::RunCommand(
      Crictl({"attach", "-i", id}), "line one\nline two\n", std::chrono::seconds(30));
  ASSERT_TRUE(attached.ok()) << attached.status();
  EXPECT_THAT(attached->output, HasSubstr("line one\nline two\n")) << attached->errors;
  // The end of crictl's stdin ended the session; stdin_once then closed cat's stdin.
  ContainerStatus exited = WaitForExit(id);
  EXPECT_EQ(exited.state(), CONTAINER_EXITED);
  EXPECT_EQ(exited.exit_code(), 0);

  // Without stdin_once the container's stdin outlives the session: cat goes on.
  ContainerConfig kept = ContainerWith("cat-kept", {"cat"});
  kept.set_stdin(true);
  std::string kept_id = Run(pod_, kept);
  // crictl stays attached (the container goes on), so it is cut off after a while.
  attached =
      base::RunCommand(Crictl({"attach", "-i", kept_id}), "only line\n", std::chrono::seconds(2));
  EXPECT_TRUE(absl::IsDeadlineExceeded(attached.status())) << attached.status();
  EXPECT_EQ(StatusOf(kept_id).state(), CONTAINER_RUNNING);
}

TEST_F(StreamingTest, CrictlPortForwardCarriesParallelConnections) {
  if (!HaveCrictl()) GTEST_SKIP() << "crictl not found at " << kCrictl << " (../shared absent)";
  EXPECT_EQ(ForwardedRequests("crictl", "served-by-the-pod", 8, 5), 8 * 5);

  // Two ports of the pod in one session (one SPDY connection, streams per port).
  Run(pod_, ContainerWith("second", {"sh", "-c",
                                     "mkdir -p /tmp/two && echo second-port > /tmp/two/index.html"
                                     " && exec busybox httpd -f -p 8081 -h /tmp/two"}));
  int first = FreePort(), second = FreePort();
  absl::StatusOr<base::ChildProcess> both = base::ChildProcess::Spawn(
      Crictl({"port-forward", pod_, absl::StrCat(first, ":8080"), absl::StrCat(second, ":8081")}),
      LogTo(kapald_->StateDir() + "/two-ports.log"));
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_TRUE(WaitForHttp(second, "/", "second-port"));
  EXPECT_TRUE(WaitForHttp(first, "/", "served-by-the-pod"));
  both->Kill();
}

TEST_F(StreamingTest, WebSocketExecV5ReportsOutputStderrAndExitCode) {
  std::string id = Sleeper();
  std::string url =
      ExecUrl(id, {"sh", "-c", "read line; echo out-$line; echo err >&2; exit 3"}, true, false);
  nlohmann::json result = WebSocket({"exec", url, "--stdin", "42\n"});
  ASSERT_TRUE(result.is_object());
  EXPECT_EQ(result["protocol"], "v5.channel.k8s.io");
  EXPECT_EQ(result["stdout"], "out-42\n");
  EXPECT_EQ(result["stderr"], "err\n");
  nlohmann::json status =
      nlohmann::json::parse(result["status"].get<std::string>(), nullptr, false);
  ASSERT_TRUE(status.is_object()) << result.dump();
  EXPECT_EQ(status["status"], "Failure");
  EXPECT_EQ(status["reason"], "NonZeroExitCode");
  EXPECT_EQ(status["details"]["causes"][0]["reason"], "ExitCode");
  EXPECT_EQ(status["details"]["causes"][0]["message"], "3");

  // The token was for one session: the same URL again is 404.
  nlohmann::json again = WebSocket({"exec", url});
  EXPECT_EQ(again["http_status"], 404) << again.dump();

  // The base64 variant of v4, and a success status.
  nlohmann::json base64 = WebSocket({"exec", ExecUrl(id, {"echo", "-n", "b64"}, false, false),
                                     "--protocol", "v4.base64.channel.k8s.io"});
  EXPECT_EQ(base64["protocol"], "v4.base64.channel.k8s.io");
  EXPECT_EQ(base64["stdout"], "b64");
  EXPECT_THAT(base64["status"].get<std::string>(), HasSubstr("\"Success\""));
  EXPECT_GE(kapald_->ScrapeValue("kapal_streaming_sessions_total", {"kind=\"exec\""}), 2);
}

TEST_F(StreamingTest, WebSocketExecWithATerminalTakesItsSizeFromTheResizeChannel) {
  std::string id = Sleeper();
  std::string url = ExecUrl(id, {"sh", "-c", "sleep 0.5; busybox stty size"}, false, true);
  nlohmann::json result = WebSocket({"exec", url, "--resize", "132x43"});
  ASSERT_TRUE(result.is_object());
  EXPECT_THAT(result["stdout"].get<std::string>(), HasSubstr("43 132")) << result.dump();
  EXPECT_THAT(result["status"].get<std::string>(), HasSubstr("\"Success\""));
}

TEST_F(StreamingTest, AClientThatVanishesLeavesNoProcessAndNoDescriptor) {
  std::string id = Sleeper();
  ContainerConfig config = ContainerWith("shell", {"sh"});
  config.set_stdin(true);
  std::string shell = Run(pod_, config);
  int kapald_pid = kapald_->Process().Pid();
  // A first session, so lazily made things (threads, the listener's state) exist already.
  WebSocket({"exec", ExecUrl(id, {"true"}, false, false)});
  int kapald_fds = OpenFdCount(kapald_pid);
  int shim_pid = 0;
  {
    ContainerStatusRequest request;
    request.set_container_id(shell);  // the shim the attach below goes through
    request.set_verbose(true);
    ContainerStatusResponse response;
    ASSERT_TRUE(stub_->ContainerStatus(Context().get(), request, &response).ok());
    nlohmann::json info = nlohmann::json::parse(response.info().at("info"));
    shim_pid = info["shimPid"];
  }
  int shim_fds = OpenFdCount(shim_pid);
  // An exec whose process tree would run for long, dropped by its client after a second.
  nlohmann::json dropped = WebSocket(
      {"exec", ExecUrl(id, {"sh", "-c", "busybox sleep 1000 & busybox sleep 1000"}, true, false),
       "--drop-after", "1"});
  EXPECT_EQ(dropped["dropped"], true);
  bool gone = false;
  for (int i = 0; i < 100 && !gone; ++i) {
    std::vector<std::string> names = ProcessNames(id);
    gone = std::count(names.begin(), names.end(), "busybox") == 0;
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(gone) << "the exec'd processes outlived their client";
  // An attach dropped the same way: the shim lets its client go.
  AttachRequest attach;
  attach.set_container_id(shell);
  attach.set_stdin(true);
  attach.set_stdout(true);
  attach.set_stderr(true);
  AttachResponse attached;
  ASSERT_TRUE(stub_->Attach(Context().get(), attach, &attached).ok());
  WebSocket({"exec", attached.url(), "--drop-after", "1"});
  bool settled = false;
  for (int i = 0; i < 100 && !settled; ++i) {
    settled = OpenFdCount(kapald_pid) == kapald_fds && OpenFdCount(shim_pid) == shim_fds;
    if (!settled) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(OpenFdCount(kapald_pid), kapald_fds);
  EXPECT_EQ(OpenFdCount(shim_pid), shim_fds);
  EXPECT_EQ(StatusOf(shell).state(), CONTAINER_RUNNING);
  EXPECT_EQ(kapald_->ScrapeValue("kapal_streaming_sessions_open", {"kind=\"exec\""}), 0);
  EXPECT_EQ(kapald_->ScrapeValue("kapal_streaming_sessions_open", {"kind=\"attach\""}), 0);
}

TEST_F(StreamingTest, RequestsAreCheckedBeforeAUrlIsGiven) {
  std::string id = Sleeper();
  ExecRequest exec;
  exec.set_container_id(id);
  exec.add_cmd("true");
  exec.set_stdout(true);
  exec.set_tty(true);
  exec.set_stderr(true);  // a terminal has no stderr of its own
  ExecResponse response;
  EXPECT_EQ(stub_->Exec(Context().get(), exec, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  exec.set_container_id("no-such-container");
  exec.set_stderr(false);
  EXPECT_EQ(stub_->Exec(Context().get(), exec, &response).error_code(),
            grpc::StatusCode::NOT_FOUND);
  std::string done = Run(pod_, ContainerWith("done", {"true"}));
  WaitForExit(done);
  exec.set_container_id(done);
  EXPECT_EQ(stub_->Exec(Context().get(), exec, &response).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  AttachRequest attach;
  attach.set_container_id(id);  // made without stdin
  attach.set_stdin(true);
  attach.set_stdout(true);
  AttachResponse attached;
  EXPECT_EQ(stub_->Attach(Context().get(), attach, &attached).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  PortForwardRequest forward;
  forward.set_pod_sandbox_id("no-such-pod");
  PortForwardResponse forwarded;
  EXPECT_EQ(stub_->PortForward(Context().get(), forward, &forwarded).error_code(),
            grpc::StatusCode::NOT_FOUND);

  // The URL is on loopback; a plain GET (no upgrade) is refused, and uses the token up.
  std::string url = ExecUrl(id, {"true"}, false, false);
  ASSERT_TRUE(absl::StartsWith(url, "http://127.0.0.1:")) << url;
  std::string rest = url.substr(strlen("http://127.0.0.1:"));
  int port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(rest.substr(0, rest.find('/')), &port));
  std::string path = rest.substr(rest.find('/'));
  EXPECT_THAT(HttpGet(port, path), HasSubstr("400 Bad Request"));
  EXPECT_THAT(HttpGet(port, path), HasSubstr("404 Not Found"));
  EXPECT_THAT(HttpGet(port, "/exec/made-up"), HasSubstr("404 Not Found"));
}

// crictl v1.36 sees what kubelet 1.36 reads from Status (the features of each handler) and runs
// a pod in a user namespace from JSON configs, as a node operator would.
TEST_F(StreamingTest, CrictlSeesTheRuntimesFeaturesAndRunsAUserNamespacePod) {
  if (!HaveCrictl()) GTEST_SKIP() << "crictl not found at " << kCrictl << " (../shared absent)";
  CommandResult info = RunCommand(Crictl({"info"}));
  ASSERT_EQ(info.exit_code, 0) << info.err;
  nlohmann::json status = nlohmann::json::parse(info.out, nullptr, false);
  ASSERT_TRUE(status.is_object()) << info.out;
  EXPECT_EQ(status["features"].value("supplemental_groups_policy", false), true) << info.out;
  bool default_handler = false;
  for (const nlohmann::json& handler : status["runtimeHandlers"]) {
    if (handler.value("name", "") != "") continue;
    default_handler = handler["features"].value("recursive_read_only_mounts", false) &&
                      handler["features"].value("user_namespaces", false);
  }
  EXPECT_TRUE(default_handler) << info.out;

  nlohmann::json mapping = {{{"host_id", 200000}, {"container_id", 0}, {"length", 65536}}};
  nlohmann::json pod = {
      {"metadata", {{"name", "userns"}, {"namespace", "default"}, {"uid", "uid-userns"}}},
      {"log_directory", logs_ + "/userns"},
      {"linux",
       {{"security_context",
         {{"namespace_options", {{"userns_options", {{"uids", mapping}, {"gids", mapping}}}}}}}}}};
  nlohmann::json container = {{"metadata", {{"name", "main"}}},
                              {"image", {{"image", image_}}},
                              {"command", {"sleep", "3600"}},
                              {"log_path", "main.log"}};
  std::string pod_json = kapald_->StateDir() + "/userns-pod.json";
  std::string container_json = kapald_->StateDir() + "/userns-container.json";
  ASSERT_TRUE(base::WriteFileAtomically(pod_json, pod.dump()).ok());
  ASSERT_TRUE(base::WriteFileAtomically(container_json, container.dump()).ok());
  // Where the containers' root filesystems cannot be reached from the pod's user namespace, the
  // pod is refused with the reason (and nothing is made).
  std::string top = kapald_->StateDir().substr(0, kapald_->StateDir().rfind('/'));
  ASSERT_EQ(::chmod(top.c_str(), 0700), 0);
  CommandResult refused = RunCommand(Crictl({"runp", pod_json}));
  ASSERT_EQ(::chmod(top.c_str(), 0711), 0);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.err, HasSubstr("searchable by others")) << refused.err;
  CommandResult ran =
      RunCommand(Crictl({"run", container_json, pod_json}), std::chrono::seconds(60));
  ASSERT_EQ(ran.exit_code, 0) << ran.err;
  std::string id(absl::StripAsciiWhitespace(ran.out));
  CommandResult uid_map = RunCommand(Crictl({"exec", id, "cat", "/proc/self/uid_map"}));
  EXPECT_EQ(uid_map.exit_code, 0) << uid_map.err;
  std::vector<std::string> fields = absl::StrSplit(uid_map.out, ' ', absl::SkipWhitespace());
  EXPECT_THAT(fields, ::testing::ElementsAre("0", "200000", "65536\n")) << uid_map.out;
  // The image's files are root's inside (idmapped layers), and root may write to /.
  CommandResult owner = RunCommand(Crictl({"exec", id, "sh", "-c", "stat -c %u /bin; touch /new"}));
  EXPECT_EQ(owner.exit_code, 0) << owner.err;
  EXPECT_EQ(owner.out, "0\n");
}

TEST_F(StreamingTest, KapalctlInteractiveVerbs) {
  std::string id = Sleeper();
  // exec -it: a shell on our terminal, its size followed, Ctrl-C to the remote process.
  absl::StatusOr<std::unique_ptr<Terminal>> terminal =
      Terminal::Start(Kapalctl({"exec", "-it", id, "sh"}), 100, 30);
  ASSERT_TRUE(terminal.ok()) << terminal.status();
  Terminal& tty = **terminal;
  ASSERT_TRUE(tty.ShellFollowsResize("sleep 100")) << tty.Screen();
  // Ctrl-C ends the sleep, not kapalctl. It can come before the shell made the sleep its
  // foreground job (then only the shell sees it and the sleep goes on), so it is typed again
  // until the shell runs the next command: "after-42" is its output, never the line's echo.
  bool interrupted = false;
  for (int attempt = 0; attempt < 5 && !interrupted; ++attempt) {
    tty.Type("\x03");
    tty.Type("echo after-$((6*7))\r");
    interrupted = tty.WaitFor("after-42", std::chrono::seconds(3));
  }
  EXPECT_TRUE(interrupted) << tty.Screen();
  tty.Type("exit 7\r");
  absl::StatusOr<base::ExitInfo> ended = tty.Wait(std::chrono::seconds(20));
  ASSERT_TRUE(ended.ok()) << ended.status();
  EXPECT_EQ(ended->exit_code, 7) << tty.Screen();

  // exec -i with a pipe: stdin in, exit code out.
  absl::StatusOr<base::CommandResult> piped =
      base::RunCommand(Kapalctl({"exec", "-i", id, "sh", "-c", "read x; echo got-$x; exit 4"}),
                       "value\n", std::chrono::seconds(30));
  ASSERT_TRUE(piped.ok()) << piped.status();
  EXPECT_EQ(piped->output, "got-value\n");
  EXPECT_EQ(piped->exit.exit_code, 4);

  // run -it --rm: a pod of its own, attached; its exit code is ours; nothing stays.
  absl::StatusOr<std::unique_ptr<Terminal>> run = Terminal::Start(
      Kapalctl({"run", "-it", "--rm", "--name", "interactive", image_, "sh"}), 90, 25);
  ASSERT_TRUE(run.ok()) << run.status();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  (*run)->Type("echo in-run-$((2*3))\r");
  EXPECT_TRUE((*run)->WaitFor("in-run-6")) << (*run)->Screen();
  (*run)->Type("exit 5\r");
  absl::StatusOr<base::ExitInfo> run_ended = (*run)->Wait(std::chrono::seconds(30));
  ASSERT_TRUE(run_ended.ok()) << run_ended.status();
  EXPECT_EQ(run_ended->exit_code, 5) << (*run)->Screen();
  CommandResult pods = kapald_->Kapalctl({"pods", "-q", "--name", "interactive"});
  EXPECT_EQ(pods.out, "");

  // port-forward: a local port to the pod's.
  EXPECT_EQ(ForwardedRequests("kapalctl", "kapalctl-forwarded", 4, 1), 4);
}

// The same server over HTTPS with a self-signed certificate ([streaming] tls = true), as
// containerd's enable_tls_streaming: crictl, the WebSocket client and kapalctl do not verify it.
class StreamingTlsTest : public StreamingTest {
 protected:
  std::string ExtraToml() const override { return "\n[streaming]\ntls = true\n"; }
};

TEST_F(StreamingTlsTest, ExecAndPortForwardOverHttps) {
  std::string id = Sleeper();
  std::string url = ExecUrl(id, {"sh", "-c", "echo over-tls; exit 2"}, false, false);
  ASSERT_TRUE(absl::StartsWith(url, "https://127.0.0.1:")) << url;
  nlohmann::json result = WebSocket({"exec", url});
  EXPECT_EQ(result["stdout"], "over-tls\n") << result.dump();
  EXPECT_THAT(result["status"].get<std::string>(), HasSubstr("NonZeroExitCode"));
  // Plain HTTP to the TLS port is no session: the token is never even read.
  std::string rest = url.substr(strlen("https://127.0.0.1:"));
  int port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(rest.substr(0, rest.find('/')), &port));
  EXPECT_THAT(HttpGet(port, "/exec/x"), ::testing::Not(HasSubstr("HTTP/1.1 101")));

  absl::StatusOr<base::CommandResult> piped =
      base::RunCommand(Kapalctl({"exec", "-i", id, "sh", "-c", "read x; echo tls-$x"}), "ok\n",
                       std::chrono::seconds(30));
  ASSERT_TRUE(piped.ok()) << piped.status();
  EXPECT_EQ(piped->output, "tls-ok\n") << piped->errors;
  EXPECT_EQ(ForwardedRequests("kapalctl", "forwarded-over-tls", 3, 2), 6);
  if (HaveCrictl()) {
    CommandResult crictl = RunCommand(Crictl({"exec", id, "echo", "crictl-over-tls"}));
    EXPECT_EQ(crictl.out, "crictl-over-tls\n") << crictl.err;
    // (crictl 1.26's port-forward verifies the certificate, unlike its exec: a self-signed one
    // is refused, with containerd's too.)
  }
}

}  // namespace
}  // namespace kapal::testing
