// Dockerfile builds through the real Docker CLI (its classic builder: DOCKER_BUILDKIT unset) and
// kapalctl, each step's RUN in a real container: what a person sees in the output, and what
// the image holds when it runs.
#include <httplib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <fstream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "tests/fixtures/docker_fixture.h"
#include "tests/fixtures/loopback_server.h"

namespace kapal::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

void WriteFile(const std::string& path, const std::string& content) {
  std::ofstream out(path, std::ios::binary);
  out << content;
}

// A file server on 127.0.0.1 for ADD's URLs.
class LoopbackFiles {
 public:
  explicit LoopbackFiles(const std::map<std::string, std::string>& files) {
    for (const auto& [path, content] : files) {
      server_.Get(path, [content](const httplib::Request&, httplib::Response& response) {
        response.set_content(content, "application/octet-stream");
      });
    }
    port_ = ServeOnLoopback(server_, thread_);
  }
  ~LoopbackFiles() {
    server_.stop();
    thread_.join();
  }
  std::string Url(const std::string& path) const {
    return absl::StrCat("http://127.0.0.1:", port_, path);
  }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
};

class BuildTest : public DockerFixture {
 protected:
  void SetUp() override {
    DockerFixture::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    absl::StatusOr<base::TempDir> context = base::TempDir::Create("build-context", "/tmp");
    ASSERT_TRUE(context.ok());
    context_.emplace(std::move(*context));
  }

  std::string Context() const { return context_->Path(); }

  void Dockerfile(const std::string& text) { WriteFile(context_->Join("Dockerfile"), text); }

  // The lines of `docker ps -a` and crictl's pods of the build namespace: none after a build.
  void ExpectNothingOfTheBuildLeft() {
    EXPECT_EQ(DockerOk({"ps", "-aq"}), "");
    ListPodSandboxRequest request;
    ListPodSandboxResponse response;
    ASSERT_TRUE(stub_->ListPodSandbox(LongContext().get(), request, &response).ok());
    for (const auto& pod : response.items()) {
      EXPECT_NE(pod.metadata().namespace_(), "kapal-build") << pod.metadata().name();
    }
    // Only this kapald's mounts: another test's build may run at the same time (ctest -j).
    absl::StatusOr<std::string> mounts = base::ReadFile("/proc/self/mountinfo");
    ASSERT_TRUE(mounts.ok());
    std::string ours;
    for (absl::string_view line : absl::StrSplit(*mounts, '\n')) {
      if (absl::StrContains(line, kapald_->RootDir() + "/")) absl::StrAppend(&ours, line, "\n");
    }
    EXPECT_THAT(ours, Not(HasSubstr("build-root"))) << ours;
    EXPECT_THAT(ours, Not(HasSubstr("build-view"))) << ours;
  }

  std::optional<base::TempDir> context_;
};

TEST_F(BuildTest, EveryInstructionBuildsRunsAndRebuildsFromCache) {
  LoopbackFiles files(std::map<std::string, std::string>{{"/remote.txt", "fetched over http\n"}});
  ASSERT_EQ(::mkdir(context_->Join("app").c_str(), 0755), 0);
  WriteFile(context_->Join("app/one.txt"), "one\n");
  WriteFile(context_->Join("app/two.txt"), "two\n");
  WriteFile(context_->Join("app/skip.md"), "not copied\n");
  WriteFile(context_->Join("script.sh"), "#!/bin/sh\necho script ran with $GREETING\n");
  ::chmod(context_->Join("script.sh").c_str(), 0755);
  // A tar for ADD to unpack.
  ASSERT_EQ(::mkdir(context_->Join("tree").c_str(), 0755), 0);
  WriteFile(context_->Join("tree/inside.txt"), "unpacked by ADD\n");
  CommandResult tar = RunCommand(
      {"/bin/tar", "-C", context_->Join("tree"), "-czf", context_->Join("tree.tgz"), "inside.txt"});
  ASSERT_EQ(tar.exit_code, 0) << tar.err;
  Dockerfile(absl::StrCat(R"(# syntax=docker/dockerfile:1
ARG BASE=)",
                          busybox_, R"(
FROM ${BASE} AS base
ARG GREETING=hello
ENV GREETING=${GREETING} \
    APP_HOME=/srv/app
LABEL org.example.name="built by kapal" version=1
WORKDIR $APP_HOME
COPY --chown=1000:1000 app/*.txt ./
COPY script.sh /usr/local/bin/
ADD tree.tgz /opt/tree/
ADD --chown=1000 )",
                          files.Url("/remote.txt"), R"( /opt/
RUN echo "built with $GREETING" > built.txt && \
    mkdir -p /tmp/gone && touch /tmp/gone/file
RUN ["/bin/sh", "-c", "rm -r /tmp/gone"]
SHELL ["/bin/sh", "-c"]
EXPOSE 8080 53/udp
VOLUME /data
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --timeout=2s --retries=2 CMD cat built.txt
ONBUILD RUN echo triggered
USER 1000:1000
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["script.sh; pwd; id -u; cat one.txt two.txt built.txt /opt/tree/inside.txt /opt/remote.txt; stat -c %u one.txt; ls /tmp"]
)"));
  CommandResult built = Docker({"build", "-t", "built:1", "--build-arg", "GREETING=bonjour",
                                "--label", "extra=yes", Context()},
                               std::chrono::seconds(180));
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  EXPECT_THAT(built.out, HasSubstr("Step 1/22 : ARG BASE=")) << built.out;
  EXPECT_THAT(built.out, HasSubstr(" ---> Running in ")) << built.out;
  EXPECT_THAT(built.out, HasSubstr("Successfully built ")) << built.out;
  EXPECT_THAT(built.out, HasSubstr("Successfully tagged built:1")) << built.out;

  CommandResult ran = Docker({"run", "--rm", "built:1"});
  EXPECT_EQ(ran.exit_code, 0) << ran.err;
  EXPECT_EQ(ran.out,
            "script ran with bonjour\n/srv/app\n1000\none\ntwo\nbuilt with bonjour\n"
            "unpacked by ADD\nfetched over http\n1000\n")
      << ran.out << ran.err;

  nlohmann::json image = Inspect("built:1", "image");
  const nlohmann::json& config = image["Config"];
  EXPECT_THAT(config["Env"].dump(), HasSubstr("GREETING=bonjour"));
  EXPECT_THAT(config["Env"].dump(), HasSubstr("APP_HOME=/srv/app"));
  EXPECT_EQ(config["Labels"]["org.example.name"], "built by kapal");
  EXPECT_EQ(config["Labels"]["version"], "1");
  EXPECT_EQ(config["Labels"]["extra"], "yes");
  EXPECT_EQ(config["WorkingDir"], "/srv/app");
  EXPECT_EQ(config["User"], "1000:1000");
  EXPECT_TRUE(config["ExposedPorts"].contains("8080/tcp")) << config.dump();
  EXPECT_TRUE(config["ExposedPorts"].contains("53/udp")) << config.dump();
  EXPECT_TRUE(config["Volumes"].contains("/data")) << config.dump();
  EXPECT_EQ(config["StopSignal"], "SIGINT");
  EXPECT_EQ(config["Healthcheck"]["Test"], nlohmann::json({"CMD-SHELL", "cat built.txt"}));
  EXPECT_EQ(config["Healthcheck"]["Interval"], 5000000000LL);
  EXPECT_EQ(config["Healthcheck"]["Retries"], 2);
  EXPECT_EQ(config["OnBuild"], nlohmann::json({"RUN echo triggered"}));
  EXPECT_EQ(config["Entrypoint"], nlohmann::json({"/bin/sh", "-c"}));

  // Unchanged: every step from the cache, the same image.
  CommandResult again = Docker({"build", "-t", "built:1", "--build-arg", "GREETING=bonjour",
                                "--label", "extra=yes", Context()},
                               std::chrono::seconds(60));
  ASSERT_EQ(again.exit_code, 0) << again.out << again.err;
  EXPECT_THAT(again.out, Not(HasSubstr("Running in"))) << again.out;
  EXPECT_THAT(again.out, HasSubstr("Using cache"));
  EXPECT_EQ(Inspect("built:1", "image")["Id"], image["Id"]);
  // A changed file is a new layer from its COPY on.
  WriteFile(context_->Join("app/two.txt"), "two, changed\n");
  CommandResult changed =
      Docker({"build", "-q", "-t", "built:2", "--build-arg", "GREETING=bonjour", Context()},
             std::chrono::seconds(180));
  ASSERT_EQ(changed.exit_code, 0) << changed.out << changed.err;
  EXPECT_NE(Inspect("built:2", "image")["Id"], image["Id"]);
  EXPECT_THAT(DockerOk({"run", "--rm", "--entrypoint", "cat", "built:2", "two.txt"}),
              HasSubstr("two, changed"));

  // history: each step, newest first, with the layer sizes.
  std::string history = DockerOk({"history", "--no-trunc", "built:1"});
  EXPECT_THAT(history, HasSubstr("echo \"built with $GREETING\"")) << history;
  EXPECT_THAT(history, HasSubstr("#(nop)  EXPOSE 53/udp 8080/tcp")) << history;
  EXPECT_THAT(history, HasSubstr("COPY --chown=1000:1000 multi:")) << history;

  // The intermediate images stay out of `docker images` unless -a.
  std::string listed = DockerOk({"images", "-q"});
  std::string all = DockerOk({"images", "-aq"});
  EXPECT_LT(std::count(listed.begin(), listed.end(), '\n'),
            std::count(all.begin(), all.end(), '\n'));
  ExpectNothingOfTheBuildLeft();
}

TEST_F(BuildTest, MultiStageCopiesFromAnEarlierStageAndStopsAtTarget) {
  Dockerfile(absl::StrCat("FROM ", busybox_, R"( AS compile
RUN mkdir /out && echo compiled > /out/artifact
FROM scratch AS final
COPY --from=compile /out/artifact /artifact
COPY --from=compile /bin/busybox /bin/busybox
CMD ["/bin/busybox", "cat", "/artifact"]
)"));
  CommandResult built = Docker({"build", "-t", "multi:1", Context()}, std::chrono::seconds(120));
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  EXPECT_EQ(DockerOk({"run", "--rm", "multi:1"}), "compiled\n");
  nlohmann::json final_image = Inspect("multi:1", "image");
  EXPECT_EQ(final_image["RootFS"]["Layers"].size(), 2u) << final_image.dump();

  CommandResult target = Docker({"build", "--target", "compile", "-t", "multi:compile", Context()},
                                std::chrono::seconds(60));
  ASSERT_EQ(target.exit_code, 0) << target.out << target.err;
  EXPECT_THAT(target.out, Not(HasSubstr("COPY --from")));
  EXPECT_EQ(DockerOk({"run", "--rm", "multi:compile", "cat", "/out/artifact"}), "compiled\n");

  CommandResult missing = Docker({"build", "--target", "nope", Context()});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_THAT(missing.err, HasSubstr("failed to reach build target nope"));
  ExpectNothingOfTheBuildLeft();
}

TEST_F(BuildTest, FailingStepsAndBadDockerfilesLeaveNothing) {
  Dockerfile(
      absl::StrCat("FROM ", busybox_, "\nRUN echo before > /file\nRUN echo failing; exit 3\n"));
  CommandResult failed = Docker({"build", "-t", "broken:1", Context()}, std::chrono::seconds(120));
  EXPECT_EQ(failed.exit_code, 3);  // the RUN's, as with dockerd's classic builder
  EXPECT_THAT(failed.out, HasSubstr("failing"));
  EXPECT_THAT(
      failed.err,
      HasSubstr("The command '/bin/sh -c echo failing; exit 3' returned a non-zero code: 3"))
      << failed.err;
  EXPECT_FALSE(Docker({"image", "inspect", "broken:1"}).exit_code == 0);
  ExpectNothingOfTheBuildLeft();

  Dockerfile(absl::StrCat("FROM ", busybox_, "\nRUNN echo typo\n"));
  CommandResult typo = Docker({"build", Context()});
  EXPECT_NE(typo.exit_code, 0);
  EXPECT_THAT(typo.err, HasSubstr("Dockerfile line 2: unknown instruction: RUNN")) << typo.err;

  Dockerfile(absl::StrCat("FROM ", busybox_, "\nCOPY ../outside /x\n"));
  CommandResult outside = Docker({"build", Context()});
  EXPECT_NE(outside.exit_code, 0);
  EXPECT_THAT(outside.err, HasSubstr("outside the build context")) << outside.err;

  Dockerfile(absl::StrCat("FROM ", busybox_, "\nCOPY missing.txt /x\n"));
  CommandResult missing = Docker({"build", Context()});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_THAT(missing.err, HasSubstr("missing.txt: file does not exist")) << missing.err;
  ExpectNothingOfTheBuildLeft();
}

TEST_F(BuildTest, BuiltImagePushesAndRunsThroughCri) {
  Dockerfile(absl::StrCat("FROM ", busybox_, "\nRUN echo from-the-build > /msg\n",
                          "CMD [\"cat\", \"/msg\"]\n"));
  std::string tag = registry_->Host() + "/built/app:1";
  CommandResult built = Docker({"build", "-t", tag, Context()}, std::chrono::seconds(120));
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  CommandResult pushed = Docker({"push", tag}, std::chrono::seconds(60));
  ASSERT_EQ(pushed.exit_code, 0) << pushed.out << pushed.err;
  // Gone from the node with its untagged intermediate image (the RUN step's), as docker rmi
  // prunes them; the FROM image stays. Then pulled back from the registry by CRI, run in a pod.
  auto lines = [](const std::string& text) {
    return std::vector<std::string>(absl::StrSplit(text, '\n', absl::SkipEmpty())).size();
  };
  std::string before = DockerOk({"images", "-a", "-q", "--no-trunc"});
  std::string removed = DockerOk({"rmi", tag});
  EXPECT_EQ(std::vector<std::string>(absl::StrSplit(removed, "Deleted: ")).size() - 1, 2u)
      << removed;
  std::string after = DockerOk({"images", "-a", "-q", "--no-trunc"});
  EXPECT_EQ(lines(before) - 2, lines(after)) << before << "\n" << after;
  EXPECT_THAT(after, HasSubstr(Inspect(busybox_, "image")["Id"].get<std::string>()));
  PullImageRequest pull;
  pull.mutable_image()->set_image(tag);
  PullImageResponse pulled;
  grpc::Status status = kapald_->ImageStub()->PullImage(LongContext().get(), pull, &pulled);
  ASSERT_TRUE(status.ok()) << status.error_message();
  absl::StatusOr<std::string> pod = RunPod(PodConfig("from-build"));
  ASSERT_TRUE(pod.ok()) << pod.status();
  ContainerConfig config = ContainerWith("app", {});
  config.mutable_image()->set_image(tag);
  config.clear_command();
  std::string id;
  grpc::Status created = Create(*pod, config, &id);
  ASSERT_TRUE(created.ok()) << created.error_message();
  ASSERT_TRUE(Start(id).ok());
  std::string log = logs_ + "/from-build/app.log";
  for (int i = 0; i < 100 && !absl::StrContains(base::ReadFile(log).value_or(""), "from-the-build");
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_THAT(base::ReadFile(log).value_or(""), HasSubstr("from-the-build"));
}

TEST_F(BuildTest, KapalctlBuildsTheSameImageAndHonoursDockerignore) {
  WriteFile(context_->Join("kept.txt"), "kept\n");
  WriteFile(context_->Join("secret.key"), "never sent\n");
  ASSERT_EQ(::mkdir(context_->Join("logs").c_str(), 0755), 0);
  WriteFile(context_->Join("logs/a.log"), "noise\n");
  WriteFile(context_->Join("logs/keep.log"), "wanted\n");
  WriteFile(context_->Join(".dockerignore"), "# not in the image\n*.key\nlogs\n!logs/keep.log\n");
  Dockerfile(absl::StrCat("FROM ", busybox_, "\nCOPY . /ctx/\nRUN ls -a /ctx | sort\n"));
  CommandResult docker_built =
      Docker({"build", "-q", "-t", "ignore:docker", Context()}, std::chrono::seconds(120));
  ASSERT_EQ(docker_built.exit_code, 0) << docker_built.out << docker_built.err;
  std::string docker_id(absl::StripAsciiWhitespace(docker_built.out));

  // kapalctl sends the same context (its own tar, the same .dockerignore rules): every step
  // comes from the cache and the image is the same.
  CommandResult built = kapald_->Kapalctl({"build", "-t", "ignore:kapalctl", Context()});
  ASSERT_EQ(built.exit_code, 0) << built.out << built.err;
  EXPECT_THAT(built.out, HasSubstr("Using cache")) << built.out;
  EXPECT_THAT(built.out, HasSubstr("Successfully tagged ignore:kapalctl\n")) << built.out;
  EXPECT_EQ(Inspect("ignore:kapalctl", "image")["Id"], docker_id);
  std::string listing =
      DockerOk({"run", "--rm", "ignore:kapalctl", "ls", "-A", "/ctx", "/ctx/logs"});
  EXPECT_EQ(listing, "/ctx:\n.dockerignore\nDockerfile\nkept.txt\nlogs\n\n/ctx/logs:\nkeep.log\n")
      << listing;
  EXPECT_THAT(listing, Not(HasSubstr("secret.key")));
  EXPECT_THAT(listing, Not(HasSubstr("a.log")));

  // -f from outside the context, a build argument, -q; a failure is the step's message.
  absl::StatusOr<base::TempDir> elsewhere = base::TempDir::Create("dockerfile", "/tmp");
  ASSERT_TRUE(elsewhere.ok());
  WriteFile(elsewhere->Join("Build.file"),
            absl::StrCat("FROM ", busybox_, "\nARG WHO\nRUN echo hello $WHO > /who\n"));
  CommandResult quiet = kapald_->Kapalctl({"build", "-q", "-f", elsewhere->Join("Build.file"),
                                           "--build-arg", "WHO=kapal", "-t", "who:1", Context()});
  ASSERT_EQ(quiet.exit_code, 0) << quiet.out << quiet.err;
  EXPECT_THAT(quiet.out, ::testing::StartsWith("sha256:"));
  EXPECT_EQ(DockerOk({"run", "--rm", "who:1", "cat", "/who"}), "hello kapal\n");
  WriteFile(elsewhere->Join("Build.file"), absl::StrCat("FROM ", busybox_, "\nRUN exit 7\n"));
  CommandResult failed =
      kapald_->Kapalctl({"build", "-f", elsewhere->Join("Build.file"), Context()});
  EXPECT_EQ(failed.exit_code, 7);  // the RUN's, as docker build exits
  EXPECT_THAT(failed.err, HasSubstr("returned a non-zero code: 7")) << failed.err;
  ExpectNothingOfTheBuildLeft();
}

}  // namespace
}  // namespace kapal::testing
