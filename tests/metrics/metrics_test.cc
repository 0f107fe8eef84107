#include "metrics/metrics.h"

#include <httplib.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kapal::metrics {
namespace {

using ::testing::HasSubstr;

TEST(MetricsTest, RpcMetricsCountByMethodAndCode) {
  Registry registry;
  RpcMetrics rpc(registry);
  rpc.Observe("/runtime.v1.RuntimeService/Version", "OK", 0.001);
  rpc.Observe("/runtime.v1.RuntimeService/Version", "OK", 0.002);
  rpc.Observe("/runtime.v1.RuntimeService/Version", "INTERNAL", 0.5);
  std::string text = registry.Serialize();
  EXPECT_THAT(text, HasSubstr("kapal_grpc_requests_total{code=\"OK\",method=\"/runtime.v1."
                              "RuntimeService/Version\"} 2"));
  EXPECT_THAT(text,
              HasSubstr("code=\"INTERNAL\",method=\"/runtime.v1.RuntimeService/Version\"} 1"));
  EXPECT_THAT(text, HasSubstr("kapal_grpc_request_duration_seconds_count{method=\"/runtime.v1."
                              "RuntimeService/Version\"} 3"));
}

TEST(MetricsTest, BuildInfoAndProcessMetrics) {
  Registry registry;
  RegisterBuildInfo(registry, "9.9.9", "abc");
  RegisterProcessMetrics(registry);
  std::string text = registry.Serialize();
  EXPECT_THAT(text, HasSubstr("kapal_build_info{commit=\"abc\",version=\"9.9.9\"} 1"));
  EXPECT_THAT(text, HasSubstr("kapal_process_resident_memory_bytes "));
  EXPECT_THAT(text, HasSubstr("kapal_process_cpu_seconds_total "));
  EXPECT_THAT(text, HasSubstr("kapal_process_start_time_seconds "));
  EXPECT_THAT(text, ::testing::Not(HasSubstr("kapal_process_resident_memory_bytes 0\n")));
}

TEST(MetricsTest, AScrapeFunctionIsReadOnEveryScrapeUntilItsHandleGoes) {
  Registry registry;
  double queued = 2;
  auto handle = registry.AddScrapeFunction([&] {
    return std::vector<prometheus::MetricFamily>{
        GaugeFamily("queued", "Things queued", "kind", {{"a", queued}, {"b", 0}})};
  });
  EXPECT_THAT(registry.Serialize(), HasSubstr("kapal_queued{kind=\"a\"} 2\n"));
  queued = 5;
  std::string text = registry.Serialize();
  EXPECT_THAT(text, HasSubstr("kapal_queued{kind=\"a\"} 5\n"));
  EXPECT_THAT(text, HasSubstr("kapal_queued{kind=\"b\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("# TYPE kapal_queued gauge"));
  handle.reset();
  EXPECT_THAT(registry.Serialize(), ::testing::Not(HasSubstr("kapal_queued")));
}

TEST(MetricsTest, ExposerServesTheRegistryOnAPickedPort) {
  Registry registry;
  RegisterBuildInfo(registry, "1.2.3", "def");
  auto exposer = HttpExposer::Start("127.0.0.1:0", registry);
  ASSERT_TRUE(exposer.ok()) << exposer.status();
  auto host_port = ParseHostPort((*exposer)->Address());
  ASSERT_TRUE(host_port.ok());
  ASSERT_NE(host_port->port, 0);
  httplib::Client client("127.0.0.1", host_port->port);
  auto response = client.Get("/metrics");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_THAT(response->body, HasSubstr("kapal_build_info{commit=\"def\",version=\"1.2.3\"} 1"));
}

TEST(MetricsTest, ExposerOnABusyPortIsAnError) {
  Registry registry;
  auto first = HttpExposer::Start("127.0.0.1:0", registry);
  ASSERT_TRUE(first.ok());
  auto second = HttpExposer::Start((*first)->Address(), registry);
  EXPECT_FALSE(second.ok());
}

TEST(MetricsTest, ParseHostPort) {
  EXPECT_EQ(ParseHostPort("127.0.0.1:9754")->port, 9754);
  EXPECT_EQ(ParseHostPort("[::1]:80")->host, "::1");
  EXPECT_EQ(ParseHostPort("localhost:1")->host, "localhost");
  EXPECT_FALSE(ParseHostPort("127.0.0.1").ok());
  EXPECT_FALSE(ParseHostPort("127.0.0.1:70000").ok());
  EXPECT_FALSE(ParseHostPort("example.com:80").ok());
  EXPECT_FALSE(ParseHostPort("[::1:80").ok());
  EXPECT_FALSE(ParseHostPort(":80").ok());
}

}  // namespace
}  // namespace kapal::metrics
