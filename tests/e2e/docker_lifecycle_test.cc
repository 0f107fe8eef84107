// The Docker workflow around a container's life, with the real Docker CLI: cp both ways
// (running and stopped), export/import, rename, restart policies (also across a kapald
// restart) and HEALTHCHECK states.
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <functional>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fixtures/docker_fixture.h"

namespace kapal::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class DockerLifecycleTest : public DockerFixture {
 protected:
  void SetUp() override {
    DockerFixture::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    absl::StatusOr<base::TempDir> dir = base::TempDir::Create("docker-lifecycle", "/tmp");
    ASSERT_TRUE(dir.ok());
    local_.emplace(std::move(*dir));
  }

  std::string Local(const std::string& name) { return local_->Join(name); }

  std::optional<base::TempDir> local_;
};

TEST_F(DockerLifecycleTest, CopyBothWaysIntoRunningAndStoppedContainers) {
  DockerOk({"run", "-d", "--name", "box", busybox_, "sleep", "600"});
  DockerOk({"exec", "box", "sh", "-c",
            "mkdir -p /data/sub && echo inside > /data/sub/file && ln -s /data/sub/file "
            "/data/link"});
  // An exec'd process gets the usual umask 022, not kapald's own 077.
  EXPECT_THAT(DockerOk({"exec", "box", "ls", "-l", "/data/sub/file"}), HasSubstr("-rw-r--r--"));

  // Out: a file, a directory, a symlink as it is and followed (-L).
  DockerOk({"cp", "box:/data/sub/file", Local("file")});
  EXPECT_EQ(*base::ReadFile(Local("file")), "inside\n");
  DockerOk({"cp", "box:/data", Local("data")});
  EXPECT_EQ(*base::ReadFile(Local("data/sub/file")), "inside\n");
  struct stat st {};
  ASSERT_EQ(::lstat(Local("data/link").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  DockerOk({"cp", "-L", "box:/data/link", Local("followed")});
  ASSERT_EQ(::lstat(Local("followed").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  // As a tar on stdout: the entries are named from the path's last part.
  CommandResult tar = RunCommand(
      {"/bin/sh", "-c",
       absl::StrCat(absl::StrJoin(DockerArgv({"cp", "box:/data/sub", "-"}), " "), " | tar -t")});
  EXPECT_THAT(tar.out, HasSubstr("sub/file")) << tar.err;

  // In: a file into a directory, a directory under a new name, keeping the owner (no -a).
  std::ofstream(Local("host.txt")) << "from the host\n";
  ASSERT_EQ(::mkdir(Local("tree").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(Local("tree/deeper").c_str(), 0755), 0);
  std::ofstream(Local("tree/deeper/leaf")) << "leaf\n";
  ASSERT_EQ(::chown(Local("tree/deeper/leaf").c_str(), 1234, 1234), 0);
  DockerOk({"cp", Local("host.txt"), "box:/data/"});
  EXPECT_EQ(DockerOk({"exec", "box", "cat", "/data/host.txt"}), "from the host\n");
  DockerOk({"cp", Local("tree"), "box:/data/copied"});
  EXPECT_EQ(DockerOk({"exec", "box", "cat", "/data/copied/deeper/leaf"}), "leaf\n");
  EXPECT_THAT(DockerOk({"exec", "box", "ls", "-ln", "/data/copied/deeper/leaf"}),
              HasSubstr("1234     1234"));
  // -a: the container's user owns what is copied (root here).
  DockerOk({"cp", "-a", Local("tree"), "box:/data/archived"});
  EXPECT_THAT(DockerOk({"exec", "box", "ls", "-ln", "/data/archived/deeper/leaf"}),
              HasSubstr("0        0"));

  // A path that climbs out stays inside the container's root.
  DockerOk({"cp", Local("host.txt"), "box:/../../../escaped.txt"});
  EXPECT_EQ(DockerOk({"exec", "box", "cat", "/escaped.txt"}), "from the host\n");
  EXPECT_NE(::access("/escaped.txt", F_OK), 0);
  CommandResult missing = Docker({"cp", "box:/no/such/file", Local("none")});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_THAT(missing.err, HasSubstr("No such container:path"));
  CommandResult no_parent = Docker({"cp", Local("host.txt"), "box:/no/such/dir/x"});
  EXPECT_NE(no_parent.exit_code, 0);

  // Stopped: both ways still work, and the next start sees the file.
  DockerOk({"stop", "-t", "0", "box"});
  DockerOk({"cp", "box:/data/host.txt", Local("back.txt")});
  EXPECT_EQ(*base::ReadFile(Local("back.txt")), "from the host\n");
  DockerOk({"cp", Local("host.txt"), "box:/etc/while-stopped"});
  DockerOk({"start", "box"});
  EXPECT_EQ(DockerOk({"exec", "box", "cat", "/etc/while-stopped"}), "from the host\n");
  DockerOk({"rm", "-f", "box"});
}

// The same core calls through kapal.v1.Containers and Builds.Commit: kapalctl works on any
// container's id.
TEST_F(DockerLifecycleTest, KapalctlContainerVerbsRenameDfAndPrune) {
  std::string id = Trimmed({"run", "-d", "--name", "viactl", busybox_, "sleep", "600"});
  CommandResult paused = kapald_->Kapalctl({"pause", id});
  EXPECT_EQ(paused.exit_code, 0) << paused.err;
  EXPECT_EQ(Field("viactl", "{{.State.Paused}}"), "true");
  EXPECT_EQ(kapald_->Kapalctl({"unpause", id.substr(0, 12)}).exit_code, 0);
  EXPECT_EQ(Field("viactl", "{{.State.Paused}}"), "false");
  // docker exec's options, which CRI's ExecSync lacks.
  CommandResult as_user = kapald_->Kapalctl({"exec", "-u", "1000:1000", "-e", "GREETING=hi", "-w",
                                             "/tmp", id.substr(0, 12), "sh", "-c",
                                             "id -u; id -g; echo $GREETING; pwd; exit 4"});
  EXPECT_EQ(as_user.exit_code, 4) << as_user.err;
  EXPECT_EQ(as_user.out, "1000\n1000\nhi\n/tmp\n");
  auto effective_caps = [&](const std::vector<std::string>& flags) {
    std::vector<std::string> argv = {"exec"};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.insert(argv.end(), {id, "cat", "/proc/self/status"});
    std::string status = kapald_->Kapalctl(argv).out;
    size_t at = status.find("CapEff:");
    return at == std::string::npos ? std::string() : status.substr(at, status.find('\n', at) - at);
  };
  std::string caps = effective_caps({"-e", "X=1"});
  EXPECT_THAT(caps, HasSubstr("CapEff"));
  EXPECT_NE(caps, effective_caps({"--privileged"}));
  EXPECT_NE(kapald_->Kapalctl({"exec", "-w", "relative", id, "true"}).exit_code, 0);
  CommandResult top = kapald_->Kapalctl({"top", id});
  EXPECT_EQ(top.exit_code, 0) << top.err;
  EXPECT_THAT(top.out, HasSubstr("sleep 600"));

  std::ofstream(Local("to-container.txt")) << "via kapalctl\n";
  CommandResult in = kapald_->Kapalctl({"cp", Local("to-container.txt"), id + ":/"});
  EXPECT_EQ(in.exit_code, 0) << in.err;
  EXPECT_EQ(DockerOk({"exec", "viactl", "cat", "/to-container.txt"}), "via kapalctl\n");
  ASSERT_EQ(::mkdir(Local("tree").c_str(), 0755), 0);
  ASSERT_EQ(::mkdir(Local("tree/sub").c_str(), 0700), 0);
  std::ofstream(Local("tree/sub/deep.txt")) << "deep\n";
  CommandResult tree_in = kapald_->Kapalctl({"cp", Local("tree"), id.substr(0, 12) + ":/tmp"});
  EXPECT_EQ(tree_in.exit_code, 0) << tree_in.err;
  EXPECT_EQ(DockerOk({"exec", "viactl", "sh", "-c",
                      "cat /tmp/tree/sub/deep.txt; stat -c %a "
                      "/tmp/tree/sub"}),
            "deep\n700\n");
  ASSERT_EQ(::mkdir(Local("out").c_str(), 0755), 0);
  CommandResult back = kapald_->Kapalctl({"cp", id + ":/to-container.txt", Local("out")});
  EXPECT_EQ(back.exit_code, 0) << back.err;
  EXPECT_EQ(*base::ReadFile(Local("out/to-container.txt")), "via kapalctl\n");
  CommandResult missing = kapald_->Kapalctl({"cp", id + ":/no/such", Local("out")});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_THAT(missing.err, HasSubstr("NOT_FOUND"));

  CommandResult committed = kapald_->Kapalctl(
      {"commit", "-c", "ENV FROM_COMMIT=1", "-m", "via kapalctl", id, "committed:ctl"});
  EXPECT_EQ(committed.exit_code, 0) << committed.err;
  EXPECT_THAT(committed.out, HasSubstr("sha256:"));
  EXPECT_EQ(DockerOk({"run", "--rm", "committed:ctl", "sh", "-c",
                      "cat /to-container.txt; echo $FROM_COMMIT"}),
            "via kapalctl\n1\n");
  EXPECT_THAT(DockerOk({"history", "--no-trunc", "--format", "{{.Comment}}", "committed:ctl"}),
              HasSubstr("via kapalctl"));

  CommandResult exported = kapald_->Kapalctl({"export", id, "-o", Local("root.tar")});
  EXPECT_EQ(exported.exit_code, 0) << exported.err;
  CommandResult listed = RunCommand({"/bin/tar", "-tf", Local("root.tar")});
  EXPECT_THAT(listed.out, HasSubstr("to-container.txt"));
  EXPECT_THAT(listed.out, HasSubstr("bin/busybox"));
  // And back as an image (docker import).
  CommandResult imported =
      kapald_->Kapalctl({"import", "-c", "CMD [\"cat\", \"/to-container.txt\"]", "-m",
                         "from kapalctl", Local("root.tar"), "imported:ctl"});
  EXPECT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_EQ(DockerOk({"run", "--rm", "imported:ctl"}), "via kapalctl\n");
  std::ofstream(Local("not-a.tar")) << "plain text\n";
  CommandResult not_tar = kapald_->Kapalctl({"import", Local("not-a.tar")});
  EXPECT_NE(not_tar.exit_code, 0);
  EXPECT_THAT(not_tar.err, HasSubstr("INVALID_ARGUMENT"));

  // Docker's node-wide verbs: rename, system df, prune.
  CommandResult renamed = kapald_->Kapalctl({"rename", "viactl", "ctl-renamed"});
  EXPECT_EQ(renamed.exit_code, 0) << renamed.err;
  EXPECT_EQ(Field("ctl-renamed", "{{.Id}}"), id);
  CommandResult df = kapald_->Kapalctl({"system", "df"});
  EXPECT_EQ(df.exit_code, 0) << df.err;
  EXPECT_THAT(df.out, HasSubstr("TYPE"));
  EXPECT_THAT(df.out, HasSubstr("Local Volumes"));
  CommandResult df_json = kapald_->Kapalctl({"system", "df", "-o", "json"});
  EXPECT_TRUE(nlohmann::json::parse(df_json.out, nullptr, false).contains("LayersSize"))
      << df_json.out;
  DockerOk({"stop", "-t", "0", "ctl-renamed"});
  CommandResult pruned = kapald_->Kapalctl({"prune", "containers"});
  EXPECT_EQ(pruned.exit_code, 0) << pruned.err;
  EXPECT_THAT(pruned.out, HasSubstr("Deleted container: " + id));
  EXPECT_THAT(pruned.out, HasSubstr("Total reclaimed space"));
  EXPECT_NE(Docker({"inspect", "ctl-renamed"}).exit_code, 0);
  CommandResult images_pruned = kapald_->Kapalctl({"prune", "images", "--all"});
  EXPECT_EQ(images_pruned.exit_code, 0) << images_pruned.err;
  EXPECT_THAT(images_pruned.out, HasSubstr("committed:ctl"));
  EXPECT_NE(Docker({"image", "inspect", "committed:ctl"}).exit_code, 0);
  EXPECT_NE(kapald_->Kapalctl({"prune", "everything"}).exit_code, 0);
}

TEST_F(DockerLifecycleTest, ExportThenImportRunsTheSameFiles) {
  DockerOk({"run", "--name", "source", busybox_, "sh", "-c", "echo exported > /marker"});
  DockerOk({"export", "-o", Local("rootfs.tar"), "source"});
  CommandResult listed = RunCommand({"/bin/tar", "-tf", Local("rootfs.tar")});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_THAT(listed.out, HasSubstr("marker"));
  EXPECT_THAT(listed.out, HasSubstr("bin/busybox"));
  std::string id = Trimmed({"import", "-m", "from a test", "-c", "CMD [\"cat\", \"/marker\"]",
                            Local("rootfs.tar"), "imported:1"});
  EXPECT_TRUE(absl::StartsWith(id, "sha256:")) << id;
  EXPECT_EQ(DockerOk({"run", "--rm", "imported:1"}), "exported\n");
  EXPECT_THAT(DockerOk({"history", "imported:1"}), HasSubstr("from a test"));
  // Not a tar: refused, and no image appears.
  std::ofstream(Local("garbage.tar")) << "not a tar at all";
  CommandResult garbage = Docker({"import", Local("garbage.tar"), "garbage:1"});
  EXPECT_NE(garbage.exit_code, 0);
  EXPECT_THAT(garbage.err, HasSubstr("not a tar archive"));
  EXPECT_NE(Docker({"image", "inspect", "garbage:1"}).exit_code, 0);
  DockerOk({"rm", "source"});
}

TEST_F(DockerLifecycleTest, RenameKeepsTheContainerAndRefusesATakenName) {
  std::string id = Trimmed({"run", "-d", "--name", "before", busybox_, "sleep", "600"});
  DockerOk({"run", "-d", "--name", "other", busybox_, "sleep", "600"});
  DockerOk({"rename", "before", "after"});
  EXPECT_EQ(Field("after", "{{.Id}} {{.Name}}"), id + " /after");
  EXPECT_NE(Docker({"inspect", "before"}).exit_code, 0);
  EXPECT_EQ(DockerOk({"exec", "after", "echo", "same"}), "same\n");
  CommandResult taken = Docker({"rename", "after", "other"});
  EXPECT_NE(taken.exit_code, 0);
  EXPECT_THAT(taken.err, HasSubstr("is already in use"));
  CommandResult bad = Docker({"rename", "after", "no/slash"});
  EXPECT_NE(bad.exit_code, 0);
  // The name is free again for a new container.
  DockerOk({"run", "--rm", "--name", "before", busybox_, "true"});
  DockerOk({"rm", "-f", "after", "other"});
}

TEST_F(DockerLifecycleTest, RestartPoliciesWithBackoffAndAcrossAKapaldRestart) {
  DockerOk(
      {"run", "-d", "--name", "always", "--restart", "always", busybox_, "sh", "-c", "exit 3"});
  DockerOk({"run", "-d", "--name", "twice", "--restart", "on-failure:2", busybox_, "sh", "-c",
            "exit 5"});
  DockerOk({"run", "-d", "--name", "clean", "--restart", "on-failure", busybox_, "true"});
  DockerOk(
      {"run", "-d", "--name", "unless", "--restart", "unless-stopped", busybox_, "sleep", "600"});
  auto restarts = [&](const std::string& name) {
    return std::atoi(Field(name, "{{.RestartCount}}").c_str());
  };
  // Back-off: 100 ms, 200, 400, ... so a few restarts within seconds.
  EXPECT_TRUE(WaitFor([&] { return restarts("always") >= 3; }, std::chrono::seconds(30)))
      << restarts("always");
  EXPECT_TRUE(WaitFor(
      [&] { return restarts("twice") == 2 && Field("twice", "{{.State.Status}}") == "exited"; },
      std::chrono::seconds(30)));
  std::this_thread::sleep_for(std::chrono::seconds(1));
  EXPECT_EQ(restarts("twice"), 2);  // on-failure:2 gives up
  EXPECT_EQ(restarts("clean"), 0);  // exit 0 is no failure
  EXPECT_EQ(Field("clean", "{{.State.Status}}"), "exited");
  EXPECT_EQ(Field("always", "{{.HostConfig.RestartPolicy.Name}}"), "always");
  EXPECT_EQ(Field("twice", "{{.HostConfig.RestartPolicy.MaximumRetryCount}}"), "2");

  // Stopped by hand: no more restarts.
  DockerOk({"stop", "-t", "0", "always"});
  DockerOk({"stop", "-t", "0", "unless"});
  EXPECT_TRUE(WaitFor([&] { return Field("always", "{{.State.Status}}") == "exited"; },
                      std::chrono::seconds(10)));
  int stopped_at = restarts("always");
  std::this_thread::sleep_for(std::chrono::seconds(2));
  EXPECT_EQ(restarts("always"), stopped_at);
  EXPECT_EQ(Field("unless", "{{.State.Status}}"), "exited");

  // A paused container stays paused across the restart (read back from the freezer).
  DockerOk({"run", "-d", "--name", "frozen", busybox_, "sleep", "600"});
  DockerOk({"pause", "frozen"});

  // kapald starts again: `always` comes back even after a stop by hand, `unless-stopped` not.
  ASSERT_TRUE(kapald_->Terminate(std::chrono::seconds(60)).ok());
  ASSERT_TRUE(kapald_->Restart().ok()) << kapald_->Log();
  EXPECT_EQ(Field("frozen", "{{.State.Status}} {{.State.Paused}}"), "paused true");
  DockerOk({"unpause", "frozen"});
  EXPECT_EQ(Field("frozen", "{{.State.Status}} {{.State.Paused}}"), "running false");
  EXPECT_TRUE(WaitFor([&] { return restarts("always") > stopped_at; }, std::chrono::seconds(30)))
      << kapald_->Log();
  EXPECT_EQ(Field("unless", "{{.State.Status}}"), "exited");
  // A start by hand resets the count.
  DockerOk({"start", "unless"});
  EXPECT_EQ(restarts("unless"), 0);
  EXPECT_EQ(Field("unless", "{{.State.Running}}"), "true");
  // `always` is removed while its policy restarts it: the remove and the restart exclude each
  // other, so the remove succeeds and nothing of the container stays.
  DockerOk({"rm", "-f", "always", "twice", "clean", "unless", "frozen"});
  absl::StatusOr<std::vector<std::string>> bundles =
      base::ListDirectory(kapald_->StateDir() + "/containers");
  EXPECT_TRUE(!bundles.ok() || bundles->empty()) << absl::StrJoin(*bundles, " ");
}

TEST_F(DockerLifecycleTest, HealthcheckStatesFromTheCliAndFromADockerfile) {
  DockerOk({"run", "-d", "--name", "checked", "--health-cmd", "test -e /ready", "--health-interval",
            "1s", "--health-retries", "2", "--health-timeout", "2s", busybox_, "sleep", "600"});
  auto health = [&](const std::string& name) { return Field(name, "{{.State.Health.Status}}"); };
  EXPECT_EQ(health("checked"), "starting");
  EXPECT_THAT(DockerOk({"ps", "--filter", "name=checked", "--format", "{{.Status}}"}),
              HasSubstr("(health: starting)"));
  EXPECT_TRUE(WaitFor([&] { return health("checked") == "unhealthy"; }, std::chrono::seconds(30)));
  EXPECT_THAT(DockerOk({"ps", "--filter", "name=checked", "--format", "{{.Status}}"}),
              HasSubstr("(unhealthy)"));
  DockerOk({"exec", "checked", "sh", "-c", ": > /ready"});
  EXPECT_TRUE(WaitFor([&] { return health("checked") == "healthy"; }, std::chrono::seconds(30)));
  nlohmann::json state = Inspect("checked")["State"]["Health"];
  EXPECT_EQ(state["FailingStreak"], 0);
  ASSERT_TRUE(state["Log"].is_array() && !state["Log"].empty()) << state.dump();
  EXPECT_EQ(state["Log"].back()["ExitCode"], 0);
  EXPECT_LE(state["Log"].size(), 5u);

  // A Dockerfile's HEALTHCHECK, as the image carries it.
  std::ofstream(Local("Dockerfile")) << "FROM " << busybox_ << "\n"
                                     << "HEALTHCHECK --interval=1s --retries=1 CMD [\"true\"]\n";
  DockerOk({"build", "-q", "-t", "healthy:1", local_->Path()});
  DockerOk({"run", "-d", "--name", "from-image", "healthy:1", "sleep", "600"});
  EXPECT_TRUE(WaitFor([&] { return health("from-image") == "healthy"; }, std::chrono::seconds(30)));
  EXPECT_THAT(Field("from-image", "{{json .Config.Healthcheck.Test}}"), HasSubstr("true"));
  // --no-healthcheck turns the image's off.
  DockerOk({"run", "-d", "--name", "unchecked", "--no-healthcheck", "healthy:1", "sleep", "600"});
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_THAT(DockerOk({"ps", "--filter", "name=unchecked", "--format", "{{.Status}}"}),
              Not(HasSubstr("health")));
  DockerOk({"rm", "-f", "checked", "from-image", "unchecked"});
}

// The Docker API on TCP with mutual TLS (dockerd's --tlsverify): a CA, a server certificate for
// 127.0.0.1, a client certificate the CA signed, and one a stranger's CA signed.
class DockerTlsTest : public DockerLifecycleTest {
 protected:
  void SetUp() override {
    absl::StatusOr<base::TempDir> dir = base::TempDir::Create("docker-tls", "/tmp");
    ASSERT_TRUE(dir.ok());
    pki_.emplace(std::move(*dir));
    const std::string script = R"(set -e
      key() { openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "$@" 2>/dev/null; }
      sign() {  # sign CA CSR OUT EXTENSIONS
        printf '%s\n' "$4" > "$3.ext"
        openssl x509 -req -in "$2" -CA "$1.pem" -CAkey "$1-key.pem" -CAcreateserial -days 1 \
          -out "$3" -extfile "$3.ext" 2>/dev/null
      }
      key -x509 -days 1 -keyout ca-key.pem -out ca.pem -subj /CN=kapal-test-ca
      key -x509 -days 1 -keyout stranger-key.pem -out stranger.pem -subj /CN=stranger-ca
      key -keyout server-key.pem -out server.csr -subj /CN=127.0.0.1
      sign ca server.csr server.pem "subjectAltName=IP:127.0.0.1
extendedKeyUsage=serverAuth"
      mkdir client rogue
      key -keyout client/key.pem -out client.csr -subj /CN=client
      sign ca client.csr client/cert.pem "extendedKeyUsage=clientAuth"
      key -keyout rogue/key.pem -out rogue.csr -subj /CN=rogue
      sign stranger rogue.csr rogue/cert.pem "extendedKeyUsage=clientAuth"
      cp ca.pem client/ca.pem; cp ca.pem rogue/ca.pem
    )";
    CommandResult made = RunCommand({"/bin/sh", "-c", "cd " + pki_->Path() + " && " + script});
    ASSERT_EQ(made.exit_code, 0) << made.out << made.err;
    DockerLifecycleTest::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    // The port the kernel picked, from kapald's log.
    std::string log = kapald_->Log();
    const std::string marker = "on tcp://127.0.0.1:";
    size_t at = log.find(marker);
    ASSERT_NE(at, std::string::npos) << log;
    port_ = std::atoi(log.c_str() + at + marker.size());
    ASSERT_GT(port_, 0);
  }

  std::string ExtraToml() const override {
    return absl::StrCat("[docker]\ntcp_address = \"127.0.0.1:0\"\ntls_cert = \"",
                        pki_->Join("server.pem"), "\"\ntls_key = \"", pki_->Join("server-key.pem"),
                        "\"\ntls_ca = \"", pki_->Join("ca.pem"), "\"\n");
  }

  // The docker CLI over TCP with the certificates in CERT_DIR (DOCKER_TLS_VERIFY=1).
  CommandResult DockerOverTls(const std::string& cert_dir, const std::vector<std::string>& args) {
    std::vector<std::string> argv = {"/usr/bin/env",
                                     absl::StrCat("DOCKER_HOST=tcp://127.0.0.1:", port_),
                                     "DOCKER_TLS_VERIFY=1",
                                     "DOCKER_CERT_PATH=" + cert_dir,
                                     "DOCKER_CONFIG=" + docker_config_->Path(),
                                     DockerCli()};
    argv.insert(argv.end(), args.begin(), args.end());
    return RunCommand(argv, std::chrono::seconds(60));
  }

  std::optional<base::TempDir> pki_;
  int port_ = 0;
};

TEST_F(DockerTlsTest, ClientsWithTheCasCertificateGetInOthersDoNot) {
  CommandResult version = DockerOverTls(pki_->Join("client"), {"version", "-f", "{{.Server.Os}}"});
  EXPECT_EQ(version.exit_code, 0) << version.err;
  EXPECT_EQ(version.out, "linux\n");
  // A run streams its output over the hijacked TLS connection.
  CommandResult run =
      DockerOverTls(pki_->Join("client"), {"run", "--rm", busybox_, "echo", "over tls"});
  EXPECT_EQ(run.exit_code, 0) << run.err;
  EXPECT_EQ(run.out, "over tls\n");
  // A certificate from another CA, no certificate at all, plain HTTP: all refused.
  CommandResult rogue = DockerOverTls(pki_->Join("rogue"), {"ps"});
  EXPECT_NE(rogue.exit_code, 0);
  CommandResult anonymous =
      RunCommand({"curl", "-sS", "--max-time", "10", "--cacert", pki_->Join("ca.pem"),
                  absl::StrCat("https://127.0.0.1:", port_, "/_ping")});
  EXPECT_NE(anonymous.exit_code, 0) << anonymous.out;
  CommandResult with_cert =
      RunCommand({"curl", "-sS", "--max-time", "10", "--cacert", pki_->Join("ca.pem"), "--cert",
                  pki_->Join("client/cert.pem"), "--key", pki_->Join("client/key.pem"),
                  absl::StrCat("https://127.0.0.1:", port_, "/_ping")});
  EXPECT_EQ(with_cert.exit_code, 0) << with_cert.err;
  EXPECT_EQ(with_cert.out, "OK");
  CommandResult plain =
      RunCommand(DockerArgv({"-H", absl::StrCat("tcp://127.0.0.1:", port_), "--tls=false", "ps"}));
  EXPECT_NE(plain.exit_code, 0);
  EXPECT_THAT(kapald_->Log(), HasSubstr("TLS connection refused"));
}

}  // namespace
}  // namespace kapal::testing
