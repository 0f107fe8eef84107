#include "daemon/config.h"

#include "base/files.h"
#include "base/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kapal::daemon {
namespace {

using ::testing::HasSubstr;

absl::Status ParseError(const std::string& toml) { return ParseConfig(toml, "test.toml").status(); }

TEST(ConfigTest, EmptyFileGivesTheDefaults) {
  auto config = ParseConfig("", "test.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(*config, Config{});
  EXPECT_EQ(config->root_dir, "/var/lib/kapal");
  EXPECT_EQ(config->state_dir, "/run/kapal");
  EXPECT_EQ(config->socket_path, "/run/kapal/kapal.sock");
  EXPECT_EQ(config->default_runtime, "runc");
}

TEST(ConfigTest, RenderedDefaultsParseBackToTheDefaults) {
  auto config = ParseConfig(RenderConfig(Config{}), "default");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(*config, Config{});
}

TEST(ConfigTest, RenderedNonDefaultConfigRoundTrips) {
  Config custom;
  custom.root_dir = "/srv/kapal \"quoted\"";
  custom.metrics_address = "";
  custom.cgroup_driver = CgroupDriverSetting::kSystemd;
  custom.runtimes["kata"] = {"/opt/kata/bin/kata-runtime"};
  custom.default_runtime = "kata";
  custom.cni_bin_dirs = {"/a", "/b", "/c"};
  custom.snapshotter = SnapshotterSetting::kNative;
  custom.registries["registry.k8s.io"] = {
      {"http://127.0.0.1:5000", "https://m.example"}, false, false, true, "/etc/ca.pem", "u", "p"};
  custom.registries["127.0.0.1:5001"] = {};
  custom.max_concurrent_downloads = 8;
  custom.pull_progress_timeout = std::chrono::seconds(90);
  custom.unpack_while_downloading = false;
  custom.parallel_ranges = false;
  custom.sync_layers_at_commit = true;
  custom.writable_layers_dir = "/srv/writable";
  custom.cdi_spec_dirs = {"/srv/cdi"};
  custom.docker_tcp_address = "0.0.0.0:2376";
  custom.docker_tls_cert = "/etc/kapal/server.pem";
  custom.docker_tls_key = "/etc/kapal/server-key.pem";
  custom.docker_tls_ca = "/etc/kapal/ca.pem";
  auto parsed = ParseConfig(RenderConfig(custom), "custom");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(*parsed, custom);
}

TEST(ConfigTest, EveryKeyOverrides) {
  auto config = ParseConfig(R"(
root = "/srv/root"
state = "/srv/state"
log_level = "debug"
[grpc]
address = "/srv/state/k.sock"
[metrics]
address = "[::1]:9000"
[cgroup]
driver = "systemd"
[runtime]
default_handler = "crun"
[runtime.handlers.crun]
binary = "/usr/local/bin/crun"
[runtime.handlers.kata]
binary = "kata-runtime"
[cni]
conf_dir = "/srv/cni"
bin_dirs = ["/srv/cni/bin"]
)",
                            "test.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->root_dir, "/srv/root");
  EXPECT_EQ(config->state_dir, "/srv/state");
  EXPECT_EQ(config->log_level, "debug");
  EXPECT_EQ(config->socket_path, "/srv/state/k.sock");
  EXPECT_EQ(config->metrics_address, "[::1]:9000");
  EXPECT_EQ(config->cgroup_driver, CgroupDriverSetting::kSystemd);
  EXPECT_EQ(config->default_runtime, "crun");
  EXPECT_EQ(config->runtimes.at("crun").binary, "/usr/local/bin/crun");
  EXPECT_EQ(config->runtimes.at("kata").binary, "kata-runtime");
  EXPECT_EQ(config->runtimes.at("runc").binary, "runc") << "built-in handlers stay";
  EXPECT_EQ(config->cni_conf_dir, "/srv/cni");
  EXPECT_EQ(config->cni_bin_dirs, std::vector<std::string>{"/srv/cni/bin"});
}

TEST(ConfigTest, EmptyMetricsAddressTurnsMetricsOff) {
  auto config = ParseConfig("[metrics]\naddress = \"\"\n", "test.toml");
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->metrics_address, "");
}

struct BadConfigCase {
  const char* name;
  const char* toml;
  const char* expected;  // a part of the message that names the fault
};

class BadConfigTest : public ::testing::TestWithParam<BadConfigCase> {};

TEST_P(BadConfigTest, IsInvalidArgumentNamingTheKey) {
  absl::Status status = ParseError(GetParam().toml);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  std::string message(status.message());
  EXPECT_THAT(message, HasSubstr(GetParam().expected));
  EXPECT_THAT(message, HasSubstr("test.toml"));
}

INSTANTIATE_TEST_SUITE_P(
    Config, BadConfigTest,
    ::testing::Values(
        BadConfigCase{"SyntaxError", "root = ", "line 1"},
        BadConfigCase{"UnknownTopLevelKey", "rooot = \"/x\"", "key 'rooot': unknown key"},
        BadConfigCase{"UnknownSection", "[network]\nx = 1", "key 'network': unknown key"},
        BadConfigCase{"UnknownNestedKey", "[metrics]\nadress = \"\"",
                      "key 'metrics.adress': unknown key"},
        BadConfigCase{"UnknownHandlerKey", "[runtime.handlers.runc]\npath = \"/x\"",
                      "key 'runtime.handlers.runc.path': unknown key"},
        BadConfigCase{"WrongType", "root = 5", "key 'root': expected a string, got an integer"},
        BadConfigCase{"SectionIsNotATable", "grpc = \"x\"", "key 'grpc': expected a table"},
        BadConfigCase{"HandlerIsNotATable", "[runtime.handlers]\nrunc = \"x\"",
                      "key 'runtime.handlers.runc': expected a table"},
        BadConfigCase{"ListOfWrongType", "[cni]\nbin_dirs = [1]",
                      "key 'cni.bin_dirs': expected an array of strings"},
        BadConfigCase{"ListIsAString", "[cni]\nbin_dirs = \"/x\"",
                      "key 'cni.bin_dirs': expected an array"},
        BadConfigCase{"RelativeRoot", "root = \"var/lib\"",
                      "key 'root': \"var/lib\" is not an absolute path"},
        BadConfigCase{"RelativeState", "state = \"run\"", "key 'state'"},
        BadConfigCase{"RelativeSocket", "[grpc]\naddress = \"kapal.sock\"", "key 'grpc.address'"},
        BadConfigCase{
            "SocketPathTooLong",
            "[grpc]\naddress = \"/run/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\"",
            "a unix socket path has at most 107 bytes"},
        BadConfigCase{"BadLogLevel", "log_level = \"loud\"",
                      "key 'log_level': unknown log level \"loud\""},
        BadConfigCase{"MetricsWithoutPort", "[metrics]\naddress = \"127.0.0.1\"",
                      "key 'metrics.address'"},
        BadConfigCase{"MetricsHostname", "[metrics]\naddress = \"metrics.example:9\"",
                      "key 'metrics.address'"},
        BadConfigCase{"MetricsBadPort", "[metrics]\naddress = \"127.0.0.1:99999\"",
                      "key 'metrics.address'"},
        BadConfigCase{"BadCgroupDriver", "[cgroup]\ndriver = \"cgroup\"",
                      "key 'cgroup.driver': \"cgroup\" is not auto, cgroupfs or systemd"},
        BadConfigCase{"UnknownDefaultHandler", "[runtime]\ndefault_handler = \"kata\"",
                      "key 'runtime.default_handler': \"kata\" is not a configured handler"},
        BadConfigCase{"EmptyHandlerBinary", "[runtime.handlers.runc]\nbinary = \"\"",
                      "key 'runtime.handlers.runc.binary': must not be empty"},
        BadConfigCase{"BadHandlerName", "[runtime.handlers.\"Bad Name\"]\nbinary = \"x\"",
                      "key 'runtime.handlers.Bad Name'"},
        BadConfigCase{"RelativeCniConfDir", "[cni]\nconf_dir = \"net.d\"", "key 'cni.conf_dir'"},
        BadConfigCase{"EmptyCniBinDirs", "[cni]\nbin_dirs = []",
                      "key 'cni.bin_dirs': must name at least one"},
        BadConfigCase{"RelativeCniBinDir", "[cni]\nbin_dirs = [\"bin\"]", "key 'cni.bin_dirs'"},
        BadConfigCase{"MirrorWithPath", "[registries.\"r.io\"]\nmirrors = [\"http://m/x\"]",
                      "key 'registries.\"r.io\".mirrors': mirror \"http://m/x\""},
        BadConfigCase{"MirrorScheme", "[registries.\"r.io\"]\nmirrors = [\"ftp://m\"]",
                      "only http:// and https://"},
        BadConfigCase{"NoOriginNoMirror", "[registries.\"r.io\"]\nfallback_to_origin = false",
                      "false needs at least one mirror"},
        BadConfigCase{"RegistryBoolType", "[registries.\"r.io\"]\nplain_http = \"yes\"",
                      "key 'registries.\"r.io\".plain_http': expected true or false, got a string"},
        BadConfigCase{"RegistryUnknownKey", "[registries.\"r.io\"]\nmirror = []",
                      "key 'registries.\"r.io\".mirror': unknown key"},
        BadConfigCase{"RegistryRelativeCa", "[registries.\"r.io\"]\nca_file = \"ca.pem\"",
                      "ca_file"},
        BadConfigCase{"UserWithoutPassword", "[registries.\"r.io\"]\nusername = \"u\"",
                      "username and password go together"},
        BadConfigCase{"RegistryWithPath", "[registries.\"r.io/x\"]", "without a path"},
        BadConfigCase{"BadSnapshotter", "[images]\nsnapshotter = \"zfs\"",
                      "key 'images.snapshotter': \"zfs\" is not auto, overlay or native"},
        BadConfigCase{"ConcurrencyNotANumber", "[images]\nmax_concurrent_downloads = \"3\"",
                      "key 'images.max_concurrent_downloads': expected an integer, got a string"},
        BadConfigCase{"ConcurrencyTooHigh", "[images]\nmax_concurrent_downloads = 1000",
                      "key 'images.max_concurrent_downloads': 1000 is not from 1 to 32"},
        BadConfigCase{"ConcurrencyOutOfRange", "[images]\nmax_concurrent_downloads = 99999999999",
                      "key 'images.max_concurrent_downloads': out of range"},
        BadConfigCase{"RelativeWritableLayersDir", "[images]\nwritable_layers_dir = \"layers\"",
                      "key 'images.writable_layers_dir': \"layers\" is not an absolute path"},
        BadConfigCase{"ProgressTimeoutNotADuration", "[images]\npull_progress_timeout = \"soon\"",
                      "key 'images.pull_progress_timeout': expected a duration"},
        BadConfigCase{"ProgressTimeoutANumber", "[images]\npull_progress_timeout = 300",
                      "key 'images.pull_progress_timeout': expected a duration"},
        BadConfigCase{"ParallelRangesNotABool", "[images]\nparallel_ranges = \"yes\"",
                      "key 'images.parallel_ranges'"},
        BadConfigCase{"SyncLayersNotABool", "[images]\nsync_layers_at_commit = 1",
                      "key 'images.sync_layers_at_commit'"},
        BadConfigCase{"DockerTcpWithoutTls", "[docker]\ntcp_address = \"0.0.0.0:2376\"",
                      "the Docker API on TCP needs mutual TLS"},
        BadConfigCase{"DockerPlainTcpNotLoopback",
                      "[docker]\ntcp_address = \"0.0.0.0:2375\"\nallow_plain_tcp = true",
                      "plain TCP is allowed on loopback only"},
        BadConfigCase{"DockerTlsHalfGiven",
                      "[docker]\ntcp_address = \"0.0.0.0:2376\"\ntls_cert = \"/c.pem\"",
                      "go together (mutual TLS)"},
        BadConfigCase{"DockerTlsWithoutTcp", "[docker]\nallow_plain_tcp = true",
                      "need 'docker.tcp_address'"}),
    [](const ::testing::TestParamInfo<BadConfigCase>& param_info) {
      return param_info.param.name;
    });

TEST(ConfigTest, PlainDockerTcpOnlyOnLoopbackWhenAllowed) {
  auto loopback =
      ParseConfig("[docker]\ntcp_address = \"127.0.0.1:2375\"\nallow_plain_tcp = true\n", "t");
  ASSERT_TRUE(loopback.ok()) << loopback.status();
  EXPECT_TRUE(loopback->docker_allow_plain_tcp);
  auto v6 = ParseConfig("[docker]\ntcp_address = \"[::1]:2375\"\nallow_plain_tcp = true\n", "t");
  EXPECT_TRUE(v6.ok()) << v6.status();
}

TEST(ConfigTest, AllErrorsAreReportedTogetherWithLines) {
  absl::Status status = ParseError("root = 1\n[metrics]\nadress = \"\"\n");
  EXPECT_THAT(status.message(), HasSubstr("line 1: key 'root'"));
  EXPECT_THAT(status.message(), HasSubstr("line 3: key 'metrics.adress'"));
}

TEST(ConfigTest, LoadConfigMissingFile) {
  auto defaults = LoadConfig("/nonexistent/kapal.toml", /*must_exist=*/false);
  ASSERT_TRUE(defaults.ok());
  EXPECT_EQ(*defaults, Config{});
  auto required = LoadConfig("/nonexistent/kapal.toml", /*must_exist=*/true);
  EXPECT_EQ(required.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(required.status().message(), HasSubstr("/nonexistent/kapal.toml"));
}

TEST(ConfigTest, LoadConfigReadsTheFile) {
  auto dir = base::TempDir::Create("kapal-config");
  ASSERT_TRUE(dir.ok());
  ASSERT_TRUE(base::WriteFileAtomically(dir->Join("k.toml"), "log_level = \"warn\"\n").ok());
  auto config = LoadConfig(dir->Join("k.toml"), true);
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->log_level, "warn");
}

TEST(ConfigTest, JsonRedactsRegistryPasswords) {
  Config config;
  config.registries["r.io"].username = "user";
  config.registries["r.io"].password = "secret";
  std::string json = ConfigToJson(config).dump();
  EXPECT_THAT(json, HasSubstr("\"user\""));
  EXPECT_THAT(json, ::testing::Not(HasSubstr("secret")));
  EXPECT_THAT(json, HasSubstr("<redacted>"));
}

TEST(ConfigTest, JsonShowsEveryKey) {
  nlohmann::json json = ConfigToJson(Config{});
  EXPECT_EQ(json["root"], "/var/lib/kapal");
  EXPECT_EQ(json["grpc"]["address"], "/run/kapal/kapal.sock");
  EXPECT_EQ(json["cgroup"]["driver"], "auto");
  EXPECT_EQ(json["runtime"]["handlers"]["runc"]["binary"], "runc");
  EXPECT_EQ(json["cni"]["bin_dirs"].size(), 2u);
  EXPECT_EQ(json["images"]["pull_progress_timeout"], "5m");
  EXPECT_EQ(json["images"]["unpack_while_downloading"], true);
  EXPECT_EQ(json["images"]["parallel_ranges"], true);
  EXPECT_EQ(json["images"]["sync_layers_at_commit"], false);
}

TEST(ConfigTest, ProgressTimeoutTakesGoDurations) {
  auto config = ParseConfig("[images]\npull_progress_timeout = \"1m30s\"\n", "t.toml");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->pull_progress_timeout, std::chrono::seconds(90));
  auto off = ParseConfig("[images]\npull_progress_timeout = \"0s\"\n", "t.toml");
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_EQ(off->pull_progress_timeout, std::chrono::seconds(0));
}

}  // namespace
}  // namespace kapal::daemon
