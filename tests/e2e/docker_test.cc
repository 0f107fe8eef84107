// The Docker front door with the real Docker CLI (Debian's docker.io client, never a dockerd):
// DOCKER_HOST points it at the test kapald's Docker socket, and each command is checked by what
// a person sees, and by what crictl and kapalctl see of the same containers.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fixtures/docker_fixture.h"
#include "tests/fixtures/net.h"
#include "tests/fixtures/pod_fixture.h"
#include "tests/fixtures/terminal.h"

namespace kapal::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

using DockerTest = DockerFixture;

TEST_F(DockerTest, VersionAndInfoNameKapal) {
  std::string version = DockerOk({"version"});
  EXPECT_THAT(version, HasSubstr("API version:       1.41"));
  EXPECT_THAT(version, HasSubstr("Server: kapal"));
  std::string info = DockerOk({"info"});
  EXPECT_THAT(info, HasSubstr("(kapal)"));
  EXPECT_THAT(info, HasSubstr("Storage Driver: overlay"));
  EXPECT_THAT(info, HasSubstr("Cgroup Driver: cgroupfs"));
  // An endpoint kapal does not serve says so, as Docker's JSON error.
  CommandResult swarm = Docker({"swarm", "init"});
  EXPECT_NE(swarm.exit_code, 0);
  EXPECT_THAT(swarm.err, HasSubstr("does not implement POST /swarm/init"));
}

TEST_F(DockerTest, PullListRunWithExitCodesAndRemove) {
  std::string pulled = DockerOk({"pull", busybox_});
  EXPECT_THAT(pulled, HasSubstr("Downloaded newer image for " + busybox_)) << pulled;
  std::string again = DockerOk({"pull", busybox_});
  EXPECT_THAT(again, HasSubstr("Image is up to date")) << again;
  std::string images = DockerOk({"images"});
  EXPECT_THAT(images, HasSubstr(registry_->Host() + "/library/busybox")) << images;

  CommandResult hi = Docker({"run", "--rm", busybox_, "echo", "hi"});
  EXPECT_EQ(hi.exit_code, 0) << hi.err;
  EXPECT_EQ(hi.out, "hi\n");
  CommandResult failing = Docker({"run", "--rm", busybox_, "sh", "-c", "echo oops >&2; exit 3"});
  EXPECT_EQ(failing.exit_code, 3);
  EXPECT_EQ(failing.err, "oops\n");
  // --rm leaves neither a container nor a pod (wait "removed" returned after the removal).
  EXPECT_EQ(DockerOk({"ps", "-aq"}), "");
  EXPECT_TRUE(Containers().empty());
}

TEST_F(DockerTest, RunPullsAMissingImage) {
  CommandResult run = Docker({"run", "--rm", busybox_, "sh", "-c", "echo pulled-and-ran"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.err, HasSubstr("Unable to find image"));
  EXPECT_EQ(run.out, "pulled-and-ran\n");
}

TEST_F(DockerTest, DetachedServerWithPublishedPortLogsExecStatsStopRemove) {
  DockerOk({"pull", "-q", busybox_});
  int port = FreePort();
  std::string id = std::string(absl::StripAsciiWhitespace(
      DockerOk({"run", "-d", "--name", "web", "-p", absl::StrCat("127.0.0.1:", port, ":80"),
                busybox_, "sh", "-c",
                "mkdir /www && echo hello-docker > /www/index.html && echo serving && "
                "exec httpd -f -p 80 -h /www"})));
  ASSERT_EQ(id.size(), 64u) << id;
  std::string answer;
  for (int i = 0; i < 100 && !absl::StrContains(answer, "hello-docker"); ++i) {
    answer = HttpGet(port, "/index.html");
    if (!absl::StrContains(answer, "hello-docker")) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
  EXPECT_THAT(answer, HasSubstr("hello-docker"));
  CommandResult curl = RunCommand(
      {"curl", "-sS", "--max-time", "5", absl::StrCat("http://127.0.0.1:", port, "/index.html")});
  EXPECT_EQ(curl.out, "hello-docker\n") << curl.err;

  std::string ps = DockerOk({"ps"});
  EXPECT_THAT(ps, HasSubstr("web"));
  EXPECT_THAT(ps, HasSubstr(absl::StrCat("127.0.0.1:", port, "->80/tcp")));
  EXPECT_THAT(ps, HasSubstr("Up "));
  EXPECT_THAT(DockerOk({"logs", "web"}), HasSubstr("serving"));
  EXPECT_EQ(DockerOk({"exec", "web", "cat", "/www/index.html"}), "hello-docker\n");
  CommandResult failing_exec = Docker({"exec", "web", "sh", "-c", "exit 5"});
  EXPECT_EQ(failing_exec.exit_code, 5);
  std::string stats = DockerOk({"stats", "--no-stream", "web"});
  EXPECT_THAT(stats, HasSubstr("web"));
  EXPECT_THAT(stats, HasSubstr("iB / "));  // memory usage / limit
  // The PIDS column counts the container's processes (httpd); BLOCK I/O is
  // read / written bytes from the blkio or io controller.
  std::string columns =
      DockerOk({"stats", "--no-stream", "--format", "{{.PIDs}}|{{.BlockIO}}", "web"});
  std::vector<std::string> parts = absl::StrSplit(absl::StripAsciiWhitespace(columns), '|');
  ASSERT_EQ(parts.size(), 2u) << columns;
  EXPECT_GE(std::atoi(parts[0].c_str()), 1) << columns;
  EXPECT_THAT(parts[1], ::testing::MatchesRegex("[0-9.]+k?M?G?B / [0-9.]+k?M?G?B")) << columns;
  nlohmann::json inspected = Inspect("web");
  EXPECT_EQ(inspected["State"]["Status"], "running");
  EXPECT_EQ(inspected["Name"], "/web");
  EXPECT_GT(inspected["State"]["Pid"].get<int>(), 0);

  // The same container as crictl and kapalctl see it.
  std::vector<runtime::v1::Container> listed = Containers();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].id(), id);
  CommandResult kapalctl = kapald_->Kapalctl({"ps"});
  EXPECT_THAT(kapalctl.out, HasSubstr(id.substr(0, 13)));
  EXPECT_THAT(kapalctl.out, HasSubstr("web"));
  // crictl of the CRI validation suite, when it sits beside the checkout (as on CI).
  const std::string crictl = KAPAL_SOURCE_DIR "/../shared/critest/bin/crictl";
  if (::access(crictl.c_str(), X_OK) == 0) {
    CommandResult crictl_ps =
        RunCommand({crictl, "--config", "/dev/null", "-r", kapald_->Endpoint(), "ps"});
    EXPECT_EQ(crictl_ps.exit_code, 0) << crictl_ps.err;
    EXPECT_THAT(crictl_ps.out, HasSubstr(id.substr(0, 13)));
    EXPECT_THAT(crictl_ps.out, HasSubstr("web"));
    CommandResult crictl_pods = RunCommand({crictl, "--config", "/dev/null", "-r",
                                            kapald_->Endpoint(), "pods", "--namespace", "docker"});
    EXPECT_THAT(crictl_pods.out, HasSubstr("web"));
  }

  // A second container cannot take the name.
  CommandResult clash = Docker({"run", "-d", "--name", "web", busybox_, "true"});
  EXPECT_NE(clash.exit_code, 0);
  EXPECT_THAT(clash.err, HasSubstr("is already in use"));
  // The image is in use: rmi refuses and names the container.
  CommandResult rmi = Docker({"rmi", busybox_});
  EXPECT_NE(rmi.exit_code, 0);
  EXPECT_THAT(rmi.err, HasSubstr(id.substr(0, 12)));
  CommandResult rm_running = Docker({"rm", "web"});
  EXPECT_NE(rm_running.exit_code, 0);
  EXPECT_THAT(rm_running.err, HasSubstr("Stop the container"));

  DockerOk({"stop", "-t", "1", "web"});
  EXPECT_THAT(DockerOk({"ps", "-a"}), HasSubstr("Exited ("));
  EXPECT_EQ(HttpGet(port, "/index.html"), "");
  DockerOk({"rm", "web"});
  EXPECT_EQ(DockerOk({"ps", "-aq"}), "");
  DockerOk({"rmi", busybox_});
  EXPECT_THAT(DockerOk({"images", "-q"}), Not(HasSubstr("busybox")));
}

TEST_F(DockerTest, LogsFollowEndsWithTheContainer) {
  DockerOk({"pull", "-q", busybox_});
  DockerOk({"run", "-d", "--name", "counter", busybox_, "sh", "-c",
            "for i in 1 2 3; do echo line$i; sleep 0.3; done; echo to-stderr >&2"});
  CommandResult follow = Docker({"logs", "-f", "counter"}, std::chrono::seconds(30));
  EXPECT_EQ(follow.exit_code, 0) << follow.err;
  EXPECT_EQ(follow.out, "line1\nline2\nline3\n");
  EXPECT_EQ(follow.err, "to-stderr\n");
  EXPECT_EQ(DockerOk({"logs", "--tail", "1", "counter"}), "");  // the last entry is stderr's
  EXPECT_EQ(DockerOk({"wait", "counter"}), "0\n");
  DockerOk({"rm", "counter"});
}

TEST_F(DockerTest, InteractiveExecAndRunThroughATerminal) {
  DockerOk({"pull", "-q", busybox_});
  DockerOk({"run", "-d", "--name", "shell", busybox_, "sleep", "1000"});
  auto terminal = Terminal::Start(DockerArgv({"exec", "-it", "shell", "sh"}), 100, 30);
  ASSERT_TRUE(terminal.ok()) << terminal.status();
  Terminal& tty = **terminal;
  ASSERT_TRUE(tty.ShellFollowsResize()) << tty.Screen();
  tty.Type("exit 7\r");
  absl::StatusOr<base::ExitInfo> exit = tty.Wait(std::chrono::seconds(20));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_EQ(exit->exit_code, 7) << tty.Screen();

  auto run = Terminal::Start(DockerArgv({"run", "-it", "--rm", busybox_, "sh"}), 80, 24);
  ASSERT_TRUE(run.ok()) << run.status();
  ASSERT_TRUE((*run)->WaitFor("# ")) << (*run)->Screen();
  (*run)->Type("echo in-$((6*7))\r");
  EXPECT_TRUE((*run)->WaitFor("in-42")) << (*run)->Screen();
  (*run)->Type("exit 4\r");
  absl::StatusOr<base::ExitInfo> run_exit = (*run)->Wait(std::chrono::seconds(20));
  ASSERT_TRUE(run_exit.ok()) << run_exit.status();
  EXPECT_EQ(run_exit->exit_code, 4) << (*run)->Screen();
  DockerOk({"rm", "-f", "shell"});
}

TEST_F(DockerTest, StdinReachesAnInteractiveRun) {
  DockerOk({"pull", "-q", busybox_});
  base::ChildOptions options;
  absl::StatusOr<base::TempDir> dir = base::TempDir::Create("docker-stdin", "/tmp");
  ASSERT_TRUE(dir.ok());
  ASSERT_TRUE(base::WriteFileAtomically(dir->Join("in"), "one\ntwo\n").ok());
  std::vector<std::string> argv =
      DockerArgv({"run", "-i", "--rm", busybox_, "sh", "-c", "while read l; do echo got-$l; done"});
  std::string command;
  for (const std::string& word : argv) absl::StrAppend(&command, "'", word, "' ");
  CommandResult piped = RunCommand({"/bin/sh", "-c", command + "< " + dir->Join("in")});
  EXPECT_EQ(piped.exit_code, 0) << piped.err;
  EXPECT_EQ(piped.out, "got-one\ngot-two\n");
}

TEST_F(DockerTest, StoppedContainerStartsAgainWithItsFiles) {
  DockerOk({"pull", "-q", busybox_});
  DockerOk({"run", "-d", "--name", "keeper", busybox_, "sh", "-c",
            "echo run >> /runs; exec sleep 1000"});
  DockerOk({"stop", "-t", "1", "keeper"});
  DockerOk({"start", "keeper"});
  EXPECT_EQ(DockerOk({"exec", "keeper", "cat", "/runs"}), "run\nrun\n");
  DockerOk({"restart", "-t", "1", "keeper"});
  EXPECT_EQ(DockerOk({"exec", "keeper", "cat", "/runs"}), "run\nrun\nrun\n");
  DockerOk({"kill", "keeper"});
  EXPECT_EQ(DockerOk({"wait", "keeper"}), "137\n");
  DockerOk({"rm", "keeper"});
}

TEST_F(DockerTest, NamedVolumeKeepsDataAcrossContainers) {
  DockerOk({"pull", "-q", busybox_});
  DockerOk({"volume", "create", "--label", "purpose=test", "store"});
  EXPECT_THAT(DockerOk({"volume", "ls"}), HasSubstr("store"));
  nlohmann::json volume = Inspect("store", "volume");
  EXPECT_EQ(volume["Labels"]["purpose"], "test");
  EXPECT_EQ(volume["Mountpoint"], kapald_->RootDir() + "/volumes/store/_data");
  DockerOk({"run", "--rm", "-v", "store:/data", busybox_, "sh", "-c", "echo kept > /data/f"});
  EXPECT_EQ(DockerOk({"run", "--rm", "-v", "store:/data:ro", busybox_, "cat", "/data/f"}),
            "kept\n");
  // Used on first mention, as Docker does.
  DockerOk({"run", "-d", "--name", "user", "-v", "fresh:/data", busybox_, "sleep", "1000"});
  EXPECT_THAT(DockerOk({"volume", "ls"}), HasSubstr("fresh"));
  CommandResult in_use = Docker({"volume", "rm", "fresh"});
  EXPECT_NE(in_use.exit_code, 0);
  EXPECT_THAT(in_use.err, HasSubstr("volume is in use"));
  DockerOk({"rm", "-f", "user"});
  DockerOk({"volume", "rm", "store"});
  EXPECT_THAT(DockerOk({"volume", "prune", "-f"}), HasSubstr("fresh"));
  EXPECT_EQ(DockerOk({"volume", "ls", "-q"}), "");

  // kapalctl's volume verbs, on the same objects.
  CommandResult created = kapald_->Kapalctl({"volume", "create", "--label", "by=kapalctl", "kv"});
  EXPECT_EQ(created.exit_code, 0) << created.err;
  EXPECT_EQ(DockerOk({"volume", "ls", "-q"}), "kv\n");
  CommandResult listed = kapald_->Kapalctl({"volume", "ls"});
  EXPECT_THAT(listed.out, HasSubstr("VOLUME NAME"));
  EXPECT_THAT(listed.out, HasSubstr("kv"));
  CommandResult inspected = kapald_->Kapalctl({"volume", "inspect", "kv"});
  EXPECT_THAT(inspected.out, HasSubstr("\"by\": \"kapalctl\""));
  CommandResult missing = kapald_->Kapalctl({"volume", "inspect", "nope"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_THAT(missing.err, HasSubstr("no such volume"));
  EXPECT_EQ(kapald_->Kapalctl({"volume", "rm", "kv"}).exit_code, 0);
  EXPECT_EQ(DockerOk({"volume", "ls", "-q"}), "");
}

TEST_F(DockerTest, UserNetworkConnectsItsContainers) {
  DockerOk({"pull", "-q", busybox_});
  std::string network = absl::StrCat("kn", ::getpid());
  // A subnet of its own, apart from the CNI fixture's 10.88.x.0/24.
  std::string subnet = absl::StrCat("10.89.", 100 + ::getpid() % 100, ".0/24");
  DockerOk({"network", "create", "--subnet", subnet, network});
  EXPECT_THAT(DockerOk({"network", "ls"}), HasSubstr(network));
  CommandResult overlapping = Docker({"network", "create", "--subnet", subnet, network + "b"});
  EXPECT_NE(overlapping.exit_code, 0);
  EXPECT_THAT(overlapping.err, HasSubstr("overlaps"));

  DockerOk({"run", "-d", "--name", "server", "--network", network, busybox_, "sh", "-c",
            "mkdir /www && echo across > /www/index.html && exec httpd -f -p 80 -h /www"});
  nlohmann::json server = Inspect("server");
  std::string ip = server["NetworkSettings"]["Networks"][network]["IPAddress"];
  ASSERT_TRUE(absl::StartsWith(ip, subnet.substr(0, subnet.size() - 4))) << server.dump();
  std::string fetched, errors;
  for (int i = 0; i < 20 && fetched.empty(); ++i) {
    // nc rather than wget: busybox-static's wget resolves through glibc's NSS and crashes.
    CommandResult got =
        Docker({"run", "--rm", "--network", network, busybox_, "sh", "-c",
                absl::StrCat("printf 'GET /index.html HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 2 ", ip,
                             " 80")});
    if (got.exit_code == 0 && absl::StrContains(got.out, "across")) fetched = "across\n";
    errors = absl::StrCat("exit ", got.exit_code, " out: ", got.out, " err: ", got.err);
  }
  EXPECT_EQ(fetched, "across\n") << errors;
  nlohmann::json inspected = Inspect(network, "network");
  EXPECT_EQ(inspected["IPAM"]["Config"][0]["Subnet"], subnet);
  EXPECT_EQ(inspected["IPAM"]["Config"][0]["Gateway"],
            subnet.substr(0, subnet.size() - 4) + "1");  // 10.89.N.0/24 -> 10.89.N.1
  EXPECT_EQ(inspected["Containers"].size(), 1u) << inspected.dump();
  CommandResult busy = Docker({"network", "rm", network});
  EXPECT_NE(busy.exit_code, 0);
  EXPECT_THAT(busy.err, HasSubstr("active endpoints"));
  CommandResult kapalctl_ls = kapald_->Kapalctl({"network", "ls"});
  EXPECT_THAT(kapalctl_ls.out, HasSubstr(network));
  EXPECT_THAT(kapalctl_ls.out, HasSubstr(subnet));
  CommandResult kapalctl_busy = kapald_->Kapalctl({"network", "rm", network});
  EXPECT_NE(kapalctl_busy.exit_code, 0);
  EXPECT_THAT(kapalctl_busy.err, HasSubstr("active endpoints"));
  DockerOk({"rm", "-f", "server"});
  DockerOk({"network", "rm", network});
  EXPECT_THAT(DockerOk({"network", "ls"}), Not(HasSubstr(network)));

  // kapalctl makes one the Docker CLI sees, with a subnet picked for it.
  std::string second = network + "k";
  CommandResult made = kapald_->Kapalctl({"network", "create", second});
  EXPECT_EQ(made.exit_code, 0) << made.err;
  nlohmann::json picked = Inspect(second, "network");
  EXPECT_TRUE(absl::StartsWith(picked["IPAM"]["Config"][0]["Subnet"].get<std::string>(), "10.89."))
      << picked.dump();
  EXPECT_EQ(kapald_->Kapalctl({"network", "rm", second}).exit_code, 0);
  EXPECT_THAT(DockerOk({"network", "ls"}), Not(HasSubstr(second)));
}

TEST_F(DockerTest, TagPushAndPullBackByDigest) {
  DockerOk({"pull", "-q", busybox_});
  // A second registry: nothing there to mount from, so every blob is uploaded.
  absl::StatusOr<std::unique_ptr<RegistryFixture>> other = RegistryFixture::Start();
  ASSERT_TRUE(other.ok()) << other.status();
  std::string target = (*other)->Host() + "/pushed/app:v1";
  DockerOk({"tag", busybox_, target});
  EXPECT_THAT(DockerOk({"images"}), HasSubstr((*other)->Host() + "/pushed/app"));
  std::string pushed = DockerOk({"push", target});
  EXPECT_THAT(pushed, HasSubstr("Pushed")) << pushed;
  size_t at = pushed.find("v1: digest: sha256:");
  ASSERT_NE(at, std::string::npos) << pushed;
  std::string digest = pushed.substr(at + 12, 71);
  // Again: the registry has every blob now.
  EXPECT_THAT(DockerOk({"push", target}), HasSubstr("Layer already exists"));
  // Into the first registry, where the image came from: its blobs are mounted, not sent.
  std::string same_registry = registry_->Host() + "/copies/app:v2";
  DockerOk({"tag", busybox_, same_registry});
  EXPECT_THAT(DockerOk({"push", same_registry}), HasSubstr("Mounted from"));

  // kapalctl's tag and push (kapal.v1) do the same.
  std::string by_kapalctl = (*other)->Host() + "/kapalctl/app:v3";
  CommandResult tagged = kapald_->Kapalctl({"tag", busybox_, by_kapalctl});
  EXPECT_EQ(tagged.exit_code, 0) << tagged.err;
  CommandResult kapalctl_push = kapald_->Kapalctl({"push", by_kapalctl});
  EXPECT_EQ(kapalctl_push.exit_code, 0) << kapalctl_push.err;
  // The blobs are in pushed/app of that registry: mounted from there, not sent again.
  EXPECT_THAT(kapalctl_push.out, HasSubstr("mounted from another repository"));
  EXPECT_THAT(kapalctl_push.out, HasSubstr(": digest " + digest));

  DockerOk({"rmi", target, same_registry, by_kapalctl, busybox_});
  std::string by_digest = (*other)->Host() + "/pushed/app@" + digest;
  DockerOk({"pull", by_digest});
  EXPECT_EQ(DockerOk({"run", "--rm", by_digest, "echo", "round-trip"}), "round-trip\n");
  CommandResult missing = Docker({"push", (*other)->Host() + "/never/tagged:x"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_THAT(missing.err, HasSubstr("does not exist locally"));
}

TEST_F(DockerTest, BadRequestsChangeNothing) {
  DockerOk({"pull", "-q", busybox_});
  CommandResult bad_name = Docker({"create", "--name", "no/slash", busybox_});
  EXPECT_NE(bad_name.exit_code, 0);
  EXPECT_THAT(bad_name.err, HasSubstr("Invalid container name"));
  CommandResult restart_policy = Docker({"create", "--restart", "sometimes", busybox_});
  EXPECT_NE(restart_policy.exit_code, 0);
  EXPECT_THAT(restart_policy.err, HasSubstr("invalid restart policy 'sometimes'"));
  CommandResult escape = Docker({"create", "-v", "store:relative", busybox_});
  EXPECT_NE(escape.exit_code, 0);
  CommandResult unknown = Docker({"logs", "nosuchcontainer"});
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_THAT(unknown.err, HasSubstr("No such container"));
  EXPECT_EQ(DockerOk({"ps", "-aq"}), "");
  EXPECT_TRUE(Containers().empty());
}

}  // namespace
}  // namespace kapal::testing
