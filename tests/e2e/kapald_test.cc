// kapald end to end: the real binary on a temporary root, spoken to over its unix socket.
#include <sys/stat.h>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "store/store.h"
#include "tests/fixtures/kapald_fixture.h"

namespace kapal::testing {
namespace {

using ::testing::HasSubstr;

class KapaldTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::unique_ptr<KapaldInstance>> started = KapaldInstance::Start();
    ASSERT_TRUE(started.ok()) << started.status();
    kapald_ = std::move(*started);
  }

  // The value of the series NAME{LABELS...} in a scrape, or -1 when it is absent.
  double ScrapeValue(const std::string& name, const std::vector<std::string>& labels) {
    return kapald_->ScrapeValue(name, labels, &scrape_);
  }

  std::unique_ptr<KapaldInstance> kapald_;
  std::string scrape_;
};

TEST_F(KapaldTest, VersionNamesKapalAndCriV1) {
  runtime::v1::VersionRequest request;
  runtime::v1::VersionResponse response;
  grpc::Status status = kapald_->RuntimeStub()->Version(Context().get(), request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(response.runtime_name(), "kapal");
  EXPECT_EQ(response.runtime_api_version(), "v1");
  EXPECT_EQ(response.version(), "0.1.0");
  EXPECT_FALSE(response.runtime_version().empty());
}

TEST_F(KapaldTest, StatusReportsBothConditionsWithReasonsWhenNotReady) {
  // The fixture's config keeps the default CNI conf dir; point it at an empty one to be sure.
  kapald_.reset();
  auto started = KapaldInstance::Start("[cni]\nconf_dir = \"/nonexistent/kapal-test-cni\"\n");
  ASSERT_TRUE(started.ok()) << started.status();
  kapald_ = std::move(*started);
  runtime::v1::StatusRequest request;
  runtime::v1::StatusResponse response;
  ASSERT_TRUE(kapald_->RuntimeStub()->Status(Context().get(), request, &response).ok());
  std::map<std::string, runtime::v1::RuntimeCondition> conditions;
  for (const auto& condition : response.status().conditions())
    conditions[condition.type()] = condition;
  ASSERT_TRUE(conditions.contains("RuntimeReady"));
  ASSERT_TRUE(conditions.contains("NetworkReady"));
  EXPECT_TRUE(conditions["RuntimeReady"].status()) << conditions["RuntimeReady"].message();
  EXPECT_FALSE(conditions["NetworkReady"].status());
  EXPECT_EQ(conditions["NetworkReady"].reason(), "NetworkPluginNotReady");
  EXPECT_THAT(conditions["NetworkReady"].message(), HasSubstr("/nonexistent/kapal-test-cni"));
  // Not verbose: no info.
  EXPECT_TRUE(response.info().empty());
}

TEST_F(KapaldTest, StatusReportsRuntimeNotReadyWhenTheOciRuntimeIsMissing) {
  kapald_.reset();
  auto started =
      KapaldInstance::Start("[runtime.handlers.runc]\nbinary = \"/nonexistent/kapal-test-runc\"\n");
  ASSERT_TRUE(started.ok()) << started.status();
  kapald_ = std::move(*started);
  runtime::v1::StatusResponse response;
  ASSERT_TRUE(kapald_->RuntimeStub()->Status(Context().get(), {}, &response).ok());
  const auto& runtime_ready = response.status().conditions(0);
  EXPECT_EQ(runtime_ready.type(), "RuntimeReady");
  EXPECT_FALSE(runtime_ready.status());
  EXPECT_EQ(runtime_ready.reason(), "OCIRuntimeNotFound");
  EXPECT_THAT(runtime_ready.message(), HasSubstr("/nonexistent/kapal-test-runc"));
}

TEST_F(KapaldTest, VerboseStatusCarriesTheEffectiveConfigAsJson) {
  runtime::v1::StatusRequest request;
  request.set_verbose(true);
  runtime::v1::StatusResponse response;
  ASSERT_TRUE(kapald_->RuntimeStub()->Status(Context().get(), request, &response).ok());
  ASSERT_TRUE(response.info().contains("config"));
  auto config = nlohmann::json::parse(response.info().at("config"));
  EXPECT_EQ(config["root"], kapald_->RootDir());
  EXPECT_EQ(config["grpc"]["address"], kapald_->SocketPath());
  auto runtime = nlohmann::json::parse(response.info().at("runtime"));
  EXPECT_EQ(runtime["schemaVersion"], store::SchemaMigrations().back().version);
  std::vector<std::string> handlers;
  for (const auto& handler : response.runtime_handlers()) handlers.push_back(handler.name());
  EXPECT_THAT(handlers, ::testing::ElementsAre("", "crun", "runc"));
}

TEST_F(KapaldTest, RuntimeConfigReportsTheConfiguredCgroupDriver) {
  for (auto [setting, expected] : {std::pair{"systemd", runtime::v1::CgroupDriver::SYSTEMD},
                                   std::pair{"cgroupfs", runtime::v1::CgroupDriver::CGROUPFS}}) {
    kapald_.reset();
    auto started = KapaldInstance::Start(absl::StrCat("[cgroup]\ndriver = \"", setting, "\"\n"));
    ASSERT_TRUE(started.ok()) << started.status();
    kapald_ = std::move(*started);
    runtime::v1::RuntimeConfigResponse response;
    ASSERT_TRUE(kapald_->RuntimeStub()->RuntimeConfig(Context().get(), {}, &response).ok());
    EXPECT_EQ(response.linux().cgroup_driver(), expected) << setting;
  }
}

TEST_F(KapaldTest, PodCidrFromUpdateRuntimeConfigSurvivesARestart) {
  runtime::v1::UpdateRuntimeConfigRequest update;
  update.mutable_runtime_config()->mutable_network_config()->set_pod_cidr("10.88.0.0/16");
  runtime::v1::UpdateRuntimeConfigResponse updated;
  grpc::Status status =
      kapald_->RuntimeStub()->UpdateRuntimeConfig(Context().get(), update, &updated);
  ASSERT_TRUE(status.ok()) << status.error_message();

  // A crash right after the reply must not lose it.
  kapald_->Process().Kill();
  ASSERT_TRUE(kapald_->Restart().ok()) << kapald_->Log();
  runtime::v1::StatusRequest request;
  request.set_verbose(true);
  runtime::v1::StatusResponse response;
  ASSERT_TRUE(kapald_->RuntimeStub()->Status(Context().get(), request, &response).ok());
  EXPECT_EQ(nlohmann::json::parse(response.info().at("runtime"))["podCIDR"], "10.88.0.0/16");
}

TEST_F(KapaldTest, BadPodCidrIsInvalidArgumentAndKeepsTheOldOne) {
  runtime::v1::UpdateRuntimeConfigRequest update;
  update.mutable_runtime_config()->mutable_network_config()->set_pod_cidr("10.88.0.0/16");
  runtime::v1::UpdateRuntimeConfigResponse updated;
  ASSERT_TRUE(kapald_->RuntimeStub()->UpdateRuntimeConfig(Context().get(), update, &updated).ok());
  update.mutable_runtime_config()->mutable_network_config()->set_pod_cidr("10.88.0.0/99");
  grpc::Status status =
      kapald_->RuntimeStub()->UpdateRuntimeConfig(Context().get(), update, &updated);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("10.88.0.0/99"));
  runtime::v1::StatusRequest request;
  request.set_verbose(true);
  runtime::v1::StatusResponse response;
  ASSERT_TRUE(kapald_->RuntimeStub()->Status(Context().get(), request, &response).ok());
  EXPECT_EQ(nlohmann::json::parse(response.info().at("runtime"))["podCIDR"], "10.88.0.0/16");
}

// Every CRI v1 rpc is served now; the last ones to come answer with precise codes, never
// UNIMPLEMENTED or UNKNOWN.
TEST_F(KapaldTest, CheckpointAndMetricRpcsAnswerWithPreciseCodes) {
  runtime::v1::CheckpointContainerRequest request;
  runtime::v1::CheckpointContainerResponse response;
  grpc::Status status =
      kapald_->RuntimeStub()->CheckpointContainer(Context().get(), request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("container id is empty"));

  runtime::v1::ListMetricDescriptorsRequest metrics_request;
  runtime::v1::ListMetricDescriptorsResponse metrics_response;
  status = kapald_->RuntimeStub()->ListMetricDescriptors(Context().get(), metrics_request,
                                                         &metrics_response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_GT(metrics_response.descriptors_size(), 20);
}

TEST_F(KapaldTest, MetricsCountEachRpcByMethodAndCode) {
  auto stub = kapald_->RuntimeStub();
  for (int i = 0; i < 3; ++i) {
    runtime::v1::VersionResponse response;
    ASSERT_TRUE(stub->Version(Context().get(), {}, &response).ok());
  }
  runtime::v1::RuntimeConfigResponse config;
  ASSERT_TRUE(stub->RuntimeConfig(Context().get(), {}, &config).ok());
  runtime::v1::RunPodSandboxResponse pod;
  ASSERT_FALSE(stub->RunPodSandbox(Context().get(), {}, &pod).ok());

  EXPECT_EQ(ScrapeValue("kapal_grpc_requests_total",
                        {"method=\"/runtime.v1.RuntimeService/Version\"", "code=\"OK\""}),
            3)
      << scrape_;
  EXPECT_EQ(ScrapeValue("kapal_grpc_requests_total",
                        {"method=\"/runtime.v1.RuntimeService/RuntimeConfig\"", "code=\"OK\""}),
            1);
  EXPECT_EQ(ScrapeValue("kapal_grpc_requests_total",
                        {"method=\"/runtime.v1.RuntimeService/RunPodSandbox\"",
                         "code=\"INVALID_ARGUMENT\""}),
            1);
  EXPECT_EQ(ScrapeValue("kapal_grpc_request_duration_seconds_count",
                        {"method=\"/runtime.v1.RuntimeService/Version\""}),
            3);
  EXPECT_EQ(ScrapeValue("kapal_build_info", {"version=\"0.1.0\""}), 1);
  EXPECT_THAT(scrape_, HasSubstr("kapal_process_resident_memory_bytes "));
  EXPECT_THAT(scrape_, HasSubstr("kapal_process_open_fds "));
}

TEST_F(KapaldTest, SocketIsRootOnly) {
  struct stat st {};
  ASSERT_EQ(::stat(kapald_->SocketPath().c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0660u);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, 0u);
}

TEST_F(KapaldTest, DatabaseIsInWalMode) {
  // SQLite keeps a -wal file next to a WAL-mode database while it is open.
  struct stat st {};
  EXPECT_EQ(::stat((kapald_->RootDir() + "/kapal.db-wal").c_str(), &st), 0);
}

TEST_F(KapaldTest, SecondDaemonOnTheSameRootRefusesToStart) {
  std::string err;
  absl::StatusOr<base::ExitInfo> second = kapald_->StartSecondAndWait(&err);
  ASSERT_TRUE(second.ok());
  EXPECT_NE(second->exit_code, 0);
  EXPECT_THAT(err, HasSubstr("another kapald"));
  // The first one is unharmed.
  runtime::v1::VersionResponse response;
  EXPECT_TRUE(kapald_->RuntimeStub()->Version(Context().get(), {}, &response).ok());
}

TEST_F(KapaldTest, LiveSocketOfADaemonOnAnotherRootIsNotTakenOver) {
  // Another root, so the root lock does not stop it: the socket check must.
  auto dir = base::TempDir::Create("kapal-e2e-other", "/tmp");
  ASSERT_TRUE(dir.ok());
  std::string config = dir->Join("kapal.toml");
  ASSERT_TRUE(base::WriteFileAtomically(
                  config, absl::StrCat("root = \"", dir->Join("root"), "\"\nstate = \"",
                                       dir->Join("state"), "\"\n[grpc]\naddress = \"",
                                       kapald_->SocketPath(), "\"\n[metrics]\naddress = \"\"\n"))
                  .ok());
  CommandResult second = RunCommand({KAPALD_BINARY, "--config", config});
  EXPECT_EQ(second.exit_code, 1);
  EXPECT_THAT(second.err, HasSubstr("is served by a running process"));
  runtime::v1::VersionResponse response;
  EXPECT_TRUE(kapald_->RuntimeStub()->Version(Context().get(), {}, &response).ok());
}

TEST_F(KapaldTest, SigtermExitsZeroAndRemovesTheSocket) {
  absl::StatusOr<base::ExitInfo> exit = kapald_->Terminate(std::chrono::seconds(40));
  ASSERT_TRUE(exit.ok()) << exit.status();
  EXPECT_TRUE(exit->exited) << exit->Describe();
  EXPECT_EQ(exit->exit_code, 0);
  struct stat st {};
  EXPECT_NE(::stat(kapald_->SocketPath().c_str(), &st), 0);
  EXPECT_THAT(kapald_->Log(), HasSubstr("stopped"));
}

TEST_F(KapaldTest, StaleSocketFromACrashIsReplaced) {
  kapald_->Process().Kill();
  struct stat st {};
  ASSERT_EQ(::stat(kapald_->SocketPath().c_str(), &st), 0) << "SIGKILL leaves the socket behind";
  ASSERT_TRUE(kapald_->Restart().ok()) << kapald_->Log();
  runtime::v1::VersionResponse response;
  EXPECT_TRUE(kapald_->RuntimeStub()->Version(Context().get(), {}, &response).ok());
}

TEST_F(KapaldTest, KapalctlVersionJson) {
  CommandResult result = kapald_->Kapalctl({"version", "-o", "json"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  auto json = nlohmann::json::parse(result.out);
  EXPECT_EQ(json["runtimeName"], "kapal");
  EXPECT_EQ(json["runtimeApiVersion"], "v1");
  EXPECT_EQ(json["version"], "0.1.0");
}

TEST_F(KapaldTest, KapalctlVersionTableAndYaml) {
  CommandResult table = kapald_->Kapalctl({"version"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("RuntimeName:  kapal\n"));
  CommandResult yaml = kapald_->Kapalctl({"version", "-o", "yaml"});
  ASSERT_EQ(yaml.exit_code, 0) << yaml.err;
  EXPECT_THAT(yaml.out, HasSubstr("runtimeName: kapal\n"));
}

TEST_F(KapaldTest, KapalctlInfoShowsConditionsAndConfig) {
  CommandResult json_result = kapald_->Kapalctl({"info"});
  ASSERT_EQ(json_result.exit_code, 0) << json_result.err;
  auto info = nlohmann::json::parse(json_result.out);
  EXPECT_EQ(info["status"]["conditions"][0]["type"], "RuntimeReady");
  EXPECT_EQ(info["config"]["root"], kapald_->RootDir());
  CommandResult table = kapald_->Kapalctl({"info", "-o", "table"});
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr("NetworkReady"));
  EXPECT_THAT(table.out, HasSubstr("cgroup driver"));
}

TEST_F(KapaldTest, KapalctlReportsAnUnreachableEndpointAndExitsNonZero) {
  CommandResult result = RunCommand({KAPALCTL_BINARY, "--config", "/dev/null", "-r",
                                     "unix:///nonexistent/kapal.sock", "-t", "300ms", "version"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_THAT(result.err, HasSubstr("cannot connect to unix:///nonexistent/kapal.sock"));
}

TEST(KapaldConfigTest, UnknownKeyIsAStartupErrorNamingTheKey) {
  absl::StatusOr<base::TempDir> dir = base::TempDir::Create("kapal-e2e-config");
  ASSERT_TRUE(dir.ok());
  std::string config = dir->Join("kapal.toml");
  ASSERT_TRUE(base::WriteFileAtomically(config, "[metrics]\nadress = \"127.0.0.1:1\"\n").ok());
  CommandResult result = RunCommand({KAPALD_BINARY, "--config", config});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.err, HasSubstr("key 'metrics.adress': unknown key"));
}

TEST(KapaldConfigTest, MissingExplicitConfigFileIsAnError) {
  CommandResult result = RunCommand({KAPALD_BINARY, "--config", "/nonexistent/kapal.toml"});
  EXPECT_EQ(result.exit_code, 2);
  EXPECT_THAT(result.err, HasSubstr("/nonexistent/kapal.toml"));
}

TEST(KapaldConfigTest, PrintedDefaultConfigIsAValidConfig) {
  CommandResult printed = RunCommand({KAPALD_BINARY, "--print-default-config"});
  ASSERT_EQ(printed.exit_code, 0) << printed.err;
  EXPECT_THAT(printed.out, HasSubstr("root = '/var/lib/kapal'"));
  EXPECT_THAT(printed.out, HasSubstr("[runtime.handlers.runc]"));
}

}  // namespace
}  // namespace kapal::testing
