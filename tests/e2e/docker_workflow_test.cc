// The rest of the Docker workflow people type every day, with the real Docker CLI: commit,
// save/load, pause/unpause, top, exec -u/-e/-w, system df and the prunes.
#include <ctime>
#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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

class DockerWorkflowTest : public DockerFixture {};

TEST_F(DockerWorkflowTest, CommitKeepsTheContainersChangesAndAppliesChanges) {
  DockerOk({"run", "--name", "changed", "-e", "MODE=committed", busybox_, "sh", "-c",
            "echo made-in-container > /made && rm /bin/busybox.unused 2>/dev/null; true"});
  std::string id = Trimmed({"commit", "--change", "ENV EXTRA=1", "--change",
                            "CMD [\"cat\", \"/made\"]", "--change", "EXPOSE 9000", "-m",
                            "a message", "-a", "tester", "changed", "committed:1"});
  EXPECT_TRUE(absl::StartsWith(id, "sha256:")) << id;
  EXPECT_EQ(DockerOk({"run", "--rm", "committed:1"}), "made-in-container\n");
  nlohmann::json image = Inspect("committed:1", "image");
  EXPECT_EQ(image["Author"], "tester") << image.dump();
  EXPECT_THAT(image["Config"]["Env"].dump(), HasSubstr("MODE=committed"));
  EXPECT_THAT(image["Config"]["Env"].dump(), HasSubstr("EXTRA=1"));
  EXPECT_TRUE(image["Config"]["ExposedPorts"].contains("9000/tcp")) << image.dump();
  EXPECT_THAT(DockerOk({"history", "committed:1"}), HasSubstr("a message"));
  CommandResult bad = Docker({"commit", "--change", "RUN echo no", "changed", "bad:1"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.err, HasSubstr("RUN is not a valid change command"));
  DockerOk({"rm", "changed"});

  // A running container is frozen during the commit and thawed after it; one paused by hand
  // stays paused.
  DockerOk({"run", "-d", "--name", "busy", busybox_, "sh", "-c", "echo live > /live; sleep 600"});
  ASSERT_TRUE(WaitFor(
      [&] {
        return Docker({"exec", "busy", "cat", "/live"}).out == "live\n";
      },
      std::chrono::seconds(10)));
  DockerOk({"commit", "busy", "from-running:1"});
  EXPECT_EQ(Field("busy", "{{.State.Status}} {{.State.Paused}}"), "running false");
  EXPECT_EQ(DockerOk({"run", "--rm", "from-running:1", "cat", "/live"}), "live\n");
  DockerOk({"pause", "busy"});
  DockerOk({"commit", "--pause=false", "busy", "from-paused:1"});
  DockerOk({"commit", "busy", "from-paused:2"});
  EXPECT_EQ(Field("busy", "{{.State.Paused}}"), "true");
  DockerOk({"rm", "-f", "busy"});
}

TEST_F(DockerWorkflowTest, SaveAndLoadRoundTripTheImages) {
  DockerOk({"pull", "-q", busybox_});
  DockerOk({"tag", busybox_, "second:tag"});
  absl::StatusOr<base::TempDir> dir = base::TempDir::Create("docker-save", "/tmp");
  ASSERT_TRUE(dir.ok());
  std::string archive = dir->Join("images.tar");
  DockerOk({"save", "-o", archive, busybox_, "second:tag"});
  // Both an OCI layout and docker save's manifest.json.
  CommandResult listed = RunCommand({"/bin/tar", "-tf", archive});
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_THAT(listed.out, HasSubstr("index.json"));
  EXPECT_THAT(listed.out, HasSubstr("manifest.json"));
  EXPECT_THAT(listed.out, HasSubstr("oci-layout"));
  std::string id = Inspect(busybox_, "image")["Id"];
  DockerOk({"rmi", busybox_, "second:tag"});
  EXPECT_NE(Docker({"image", "inspect", busybox_}).exit_code, 0);
  std::string loaded = DockerOk({"load", "-i", archive});
  EXPECT_THAT(loaded, HasSubstr("Loaded image: " + busybox_)) << loaded;
  EXPECT_THAT(loaded, HasSubstr("Loaded image: second:tag")) << loaded;
  EXPECT_EQ(Inspect("second:tag", "image")["Id"], id);
  EXPECT_EQ(DockerOk({"run", "--rm", "second:tag", "echo", "loaded"}), "loaded\n");
  // Garbage is refused with a message and changes nothing.
  std::ofstream(dir->Join("garbage.tar")) << "not a tar at all";
  CommandResult garbage = Docker({"load", "-i", dir->Join("garbage.tar")});
  EXPECT_NE(garbage.exit_code, 0);
}

TEST_F(DockerWorkflowTest, PauseTopAndExecAsAnotherUser) {
  DockerOk({"run", "-d", "--name", "sleeper", busybox_, "sh", "-c",
            "echo 'svc:x:1234:1234::/:/bin/sh' >> /etc/passwd; "
            "echo 'svc:x:1234:' >> /etc/group; mkdir -p /work; exec sleep 600"});
  std::string top = DockerOk({"top", "sleeper"});
  EXPECT_THAT(top, HasSubstr("PID"));
  EXPECT_THAT(top, HasSubstr("sleep 600")) << top;

  DockerOk({"pause", "sleeper"});
  EXPECT_EQ(Inspect("sleeper")["State"]["Status"], "paused");
  EXPECT_THAT(DockerOk({"ps"}), HasSubstr("(Paused)"));
  CommandResult again = Docker({"pause", "sleeper"});
  EXPECT_NE(again.exit_code, 0);
  EXPECT_THAT(again.err, HasSubstr("already paused"));
  DockerOk({"unpause", "sleeper"});
  EXPECT_EQ(Inspect("sleeper")["State"]["Status"], "running");

  for (int i = 0;
       i < 50 && !absl::StrContains(DockerOk({"exec", "sleeper", "cat", "/etc/group"}), "svc:");
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(DockerOk({"exec", "-u", "svc", "sleeper", "id", "-u"}), "1234\n");
  EXPECT_EQ(DockerOk({"exec", "-u", "app", "sleeper", "id", "-u"}), "1000\n");  // the image's
  EXPECT_EQ(DockerOk({"exec", "-u", "99:98", "sleeper", "id", "-g"}), "98\n");
  EXPECT_EQ(DockerOk({"exec", "-e", "GREETING=hi", "-w", "/work", "sleeper", "sh", "-c",
                      "echo $GREETING $(pwd)"}),
            "hi /work\n");
  // --privileged: every capability (CapEff all ones for the known caps).
  auto effective = [&](std::vector<std::string> args) {
    std::string status = DockerOk(args);
    size_t at = status.find("CapEff:");
    return at == std::string::npos ? std::string() : status.substr(at, status.find('\n', at) - at);
  };
  std::string plain = effective({"exec", "sleeper", "cat", "/proc/self/status"});
  std::string privileged =
      effective({"exec", "--privileged", "sleeper", "cat", "/proc/self/status"});
  EXPECT_FALSE(plain.empty());
  EXPECT_NE(plain, privileged) << plain;

  // A paused container still stops.
  DockerOk({"pause", "sleeper"});
  DockerOk({"rm", "-f", "sleeper"});
  EXPECT_EQ(DockerOk({"ps", "-aq"}), "");
}

TEST_F(DockerWorkflowTest, SystemDfAndPrunes) {
  DockerOk({"pull", "-q", busybox_});
  DockerOk({"run", "--name", "done1", busybox_, "sh", "-c", "head -c 100000 /dev/zero > /f"});
  DockerOk({"run", "-d", "--name", "running1", busybox_, "sleep", "600"});
  DockerOk({"volume", "create", "unused-volume"});
  DockerOk({"network", "create", "unused-net"});
  std::string df = DockerOk({"system", "df"});
  EXPECT_THAT(df, HasSubstr("Images"));
  EXPECT_THAT(df, HasSubstr("Containers"));
  EXPECT_THAT(df, HasSubstr("Local Volumes"));
  // One JSON line per kind: images, containers, volumes, build cache.
  std::string lines = DockerOk({"system", "df", "--format", "{{json .}}"});
  nlohmann::json images = nlohmann::json::parse(lines.substr(0, lines.find('\n')), nullptr, false);
  ASSERT_TRUE(images.is_object()) << lines;
  EXPECT_EQ(images["Type"], "Images");
  EXPECT_EQ(images["Active"], "1") << lines;

  std::string pruned = DockerOk({"container", "prune", "-f"});
  EXPECT_THAT(pruned, HasSubstr("Deleted Containers")) << pruned;
  std::string left = DockerOk({"ps", "-a", "--format", "{{.Names}}"});
  EXPECT_EQ(left, "running1\n");
  // An image a container uses stays, also with -a.
  DockerOk({"image", "prune", "-a", "-f"});
  EXPECT_EQ(Docker({"image", "inspect", busybox_}).exit_code, 0);
  DockerOk({"rm", "-f", "running1"});
  std::string system = DockerOk({"system", "prune", "-a", "-f", "--volumes"});
  EXPECT_THAT(system, HasSubstr("Total reclaimed space")) << system;
  EXPECT_NE(Docker({"image", "inspect", busybox_}).exit_code, 0);
  EXPECT_THAT(DockerOk({"network", "ls"}), Not(HasSubstr("unused-net")));
  EXPECT_THAT(DockerOk({"volume", "ls"}), Not(HasSubstr("unused-volume")));
}

TEST_F(DockerWorkflowTest, EventsOfARunRmImagesAndVolumesSinceUntilAndFiltered) {
  std::string since = std::to_string(std::time(nullptr) - 1);
  DockerOk({"pull", "-q", busybox_});
  DockerOk({"run", "--rm", "--name", "evented", busybox_, "true"});
  DockerOk({"volume", "create", "evented-volume"});
  DockerOk({"volume", "rm", "evented-volume"});
  std::string until = std::to_string(std::time(nullptr) + 1);
  std::string format = "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}";
  // --until ends the stream: the command returns with what happened.
  std::string events = DockerOk({"events", "--since", since, "--until", until, "--format", format});
  EXPECT_THAT(events, HasSubstr("image pull " + busybox_)) << events;
  for (const char* action : {"create", "start", "die", "destroy"}) {
    EXPECT_THAT(events, HasSubstr(absl::StrCat("container ", action, " evented"))) << events;
  }
  EXPECT_LT(events.find("container create evented"), events.find("container destroy evented"));
  EXPECT_THAT(events, HasSubstr("volume create"));
  EXPECT_THAT(events, HasSubstr("volume destroy"));
  std::string died =
      DockerOk({"events", "--since", since, "--until", until, "--filter", "event=die", "--filter",
                "container=evented", "--format", "{{.Action}} {{.Actor.Attributes.exitCode}}"});
  EXPECT_EQ(died, "die 0\n");
  // kapalctl reads the same journal.
  CommandResult volumes =
      kapald_->Kapalctl({"events", "--since", since, "--until", until, "--filter", "type=volume"});
  EXPECT_EQ(volumes.exit_code, 0) << volumes.err;
  EXPECT_THAT(volumes.out, HasSubstr(" volume create evented-volume (driver=local)"))
      << volumes.out;
  EXPECT_THAT(volumes.out, HasSubstr(" volume destroy evented-volume")) << volumes.out;
  EXPECT_THAT(volumes.out, Not(HasSubstr("container")));
  CommandResult json = kapald_->Kapalctl(
      {"events", "--since", since, "--until", until, "-o", "json", "--filter", "event=pull"});
  EXPECT_EQ(json.exit_code, 0) << json.err;
  // One object a line: the fixture's CRI pull, then docker pull.
  nlohmann::json pulled =
      nlohmann::json::parse(json.out.substr(0, json.out.find('\n')), nullptr, false);
  ASSERT_TRUE(pulled.is_object()) << json.out;
  EXPECT_EQ(pulled["Type"], "image");
  EXPECT_THAT(json.out, HasSubstr("\"ID\":\"" + busybox_ + "\""));
}

}  // namespace
}  // namespace kapal::testing
