#include "images/registry_hosts.h"

#include "gtest/gtest.h"

namespace kapal::images {
namespace {

TEST(RegistryHostsTest, MirrorsFirstThenTheOriginWithItsSettings) {
  RegistryHostSettings settings;
  settings.mirrors = {"http://10.0.0.1:5000", "https://mirror.example", "127.0.0.1:5001"};
  settings.skip_verify = true;
  settings.plain_http = true;
  RegistryHosts hosts({{"registry.example", settings}});
  std::vector<RegistryEndpoint> endpoints = hosts.EndpointsFor("registry.example");
  ASSERT_EQ(endpoints.size(), 4u);
  EXPECT_EQ(endpoints[0].Url(), "http://10.0.0.1:5000");
  EXPECT_EQ(endpoints[1].Url(), "https://mirror.example");
  EXPECT_TRUE(endpoints[1].skip_verify);
  EXPECT_EQ(endpoints[2].Url(), "http://127.0.0.1:5001") << "loopback: plain HTTP";
  EXPECT_EQ(endpoints[3].Url(), "http://registry.example") << "plain_http for this registry only";
  EXPECT_EQ(hosts.EndpointsFor("other.example").front().Url(), "https://other.example");
  EXPECT_EQ(hosts.EndpointsFor("docker.io").front().Url(), "https://registry-1.docker.io");
}

TEST(RegistryHostsTest, NoFallbackMeansMirrorsOnly) {
  RegistryHostSettings settings;
  settings.mirrors = {"127.0.0.1:5000"};
  settings.fallback_to_origin = false;
  settings.username = "u";
  settings.password = "p";
  RegistryHosts hosts({{"registry.k8s.io", settings}});
  ASSERT_EQ(hosts.EndpointsFor("registry.k8s.io").size(), 1u);
  EXPECT_EQ(hosts.CredentialsFor("registry.k8s.io").username, "u");
  EXPECT_TRUE(hosts.CredentialsFor("docker.io").Empty());
}

TEST(RegistryHostsTest, MirrorSyntax) {
  EXPECT_TRUE(ParseMirror("https://m.example/").ok());
  EXPECT_FALSE(ParseMirror("ftp://m").ok());
  EXPECT_FALSE(ParseMirror("http://m/path").ok());
  EXPECT_FALSE(ParseMirror("").ok());
}

}  // namespace
}  // namespace kapal::images
