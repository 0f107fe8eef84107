#include "images/registry_client.h"

#include <httplib.h>

#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "images/content_store.h"
#include "nlohmann/json.hpp"
#include "tests/fixtures/image_stack.h"
#include "tests/fixtures/kapald_fixture.h"
#include "tests/fixtures/registry_fixture.h"

namespace kapal::images {
namespace {

using testing::BuildLayer;
using testing::Compression;
using ::testing::HasSubstr;
using testing::LayerEntry;
using testing::RegistryFixture;
using testing::TestImage;

class RealRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto registry = RegistryFixture::Start();
    ASSERT_TRUE(registry.ok()) << registry.status();
    registry_ = std::move(*registry);
    auto layer = BuildLayer({{LayerEntry::Kind::kFile, "hello", std::string(100000, 'h')}},
                            Compression::kGzip);
    ASSERT_TRUE(layer.ok());
    image_.layers.push_back(*layer);
    auto digest = registry_->Push("kapal/hello", "v1", image_);
    ASSERT_TRUE(digest.ok()) << digest.status();
    manifest_digest_ = *digest;
    auto stack = testing::ImageStack::Create();
    ASSERT_TRUE(stack.ok()) << stack.status();
    stack_ = std::move(*stack);
    content_ = stack_->content.get();
  }

  RegistryClient Client() { return RegistryClient(DefaultEndpoint(registry_->Host()), {}); }

  std::unique_ptr<RegistryFixture> registry_;
  TestImage image_;
  std::string manifest_digest_;
  std::unique_ptr<testing::ImageStack> stack_;
  ContentStore* content_ = nullptr;
};

TEST_F(RealRegistryTest, LoopbackRegistryUsesPlainHttp) {
  EXPECT_TRUE(DefaultEndpoint(registry_->Host()).plain_http);
  EXPECT_TRUE(DefaultEndpoint("localhost:5000").plain_http);
  EXPECT_TRUE(DefaultEndpoint("[::1]:5000").plain_http);
  EXPECT_FALSE(DefaultEndpoint("registry.k8s.io").plain_http);
  EXPECT_FALSE(DefaultEndpoint("127.example.com").plain_http);
  EXPECT_EQ(DefaultEndpoint("docker.io").host, "registry-1.docker.io");
}

TEST_F(RealRegistryTest, FetchesAManifestByTagAndByDigest) {
  RegistryClient client = Client();
  auto by_tag = client.FetchManifest("kapal/hello", "v1");
  ASSERT_TRUE(by_tag.ok()) << by_tag.status();
  EXPECT_EQ(by_tag->media_type, "application/vnd.oci.image.manifest.v1+json");
  EXPECT_EQ(by_tag->digest.String(), manifest_digest_);
  auto by_digest = client.FetchManifest("kapal/hello", manifest_digest_);
  ASSERT_TRUE(by_digest.ok()) << by_digest.status();
  EXPECT_EQ(by_digest->body, by_tag->body);
}

TEST_F(RealRegistryTest, UnknownTagAndRepositoryAreNotFound) {
  RegistryClient client = Client();
  auto tag = client.FetchManifest("kapal/hello", "v2");
  EXPECT_EQ(tag.status().code(), absl::StatusCode::kNotFound) << tag.status();
  EXPECT_THAT(std::string(tag.status().message()), HasSubstr("MANIFEST_UNKNOWN"));
  auto repository = client.FetchManifest("kapal/nothing", "v1");
  EXPECT_EQ(repository.status().code(), absl::StatusCode::kNotFound) << repository.status();
}

TEST_F(RealRegistryTest, BlobStreamsIntoTheContentStore) {
  RegistryClient client = Client();
  const testing::LayerBlob& layer = image_.layers[0];
  auto digest = Digest::Parse(layer.digest);
  ASSERT_TRUE(digest.ok());
  auto writer = content_->Writer(*digest, static_cast<int64_t>(layer.data.size()));
  ASSERT_TRUE(writer.ok());
  absl::Status fetched = client.FetchBlob("kapal/hello", *digest, [&](const char* data, size_t n) {
    return (*writer)->Write(data, n);
  });
  ASSERT_TRUE(fetched.ok()) << fetched;
  ASSERT_TRUE((*writer)->Commit().ok());
  EXPECT_EQ(content_->ReadAll(*digest).value_or(""), layer.data);
}

TEST_F(RealRegistryTest, BlobCorruptedOnTheRegistryIsRejectedAndNothingIsKept) {
  const testing::LayerBlob& layer = image_.layers[0];
  std::string corrupt = layer.data;
  corrupt[corrupt.size() / 2] ^= 0x5a;
  ASSERT_TRUE(base::WriteFileAtomically(registry_->BlobDataPath(layer.digest), corrupt).ok());
  auto digest = Digest::Parse(layer.digest);
  ASSERT_TRUE(digest.ok());
  RegistryClient client = Client();
  {
    auto writer = content_->Writer(*digest, static_cast<int64_t>(layer.data.size()));
    ASSERT_TRUE(writer.ok());
    ASSERT_TRUE(
        client
            .FetchBlob("kapal/hello", *digest,
                       [&](const char* data, size_t n) { return (*writer)->Write(data, n); })
            .ok());
    auto committed = (*writer)->Commit();
    EXPECT_EQ(committed.status().code(), absl::StatusCode::kDataLoss);
    EXPECT_THAT(std::string(committed.status().message()), HasSubstr(layer.digest));
  }
  EXPECT_FALSE(content_->Has(*digest));
}

TEST_F(RealRegistryTest, UnreachableRegistryIsUnavailable) {
  absl::StatusOr<int> port = testing::PickFreeLoopbackPort();
  ASSERT_TRUE(port.ok());
  RegistryClient client(DefaultEndpoint(absl::StrCat("127.0.0.1:", *port)), {});
  EXPECT_EQ(client.FetchManifest("a/b", "c").status().code(), absl::StatusCode::kUnavailable);
}

// A registry stand-in on loopback for the authentication flows: /v2/ paths demand
// `Authorization: Bearer good-token` (Bearer mode) or Basic user:secret (Basic mode); /token is
// the realm, which hands out good-token for the right basic credentials or for anyone when
// anonymous pulls are allowed.
Credentials UserPassword(const std::string& user, const std::string& password) {
  Credentials credentials;
  credentials.username = user;
  credentials.password = password;
  return credentials;
}

void WaitUntilListening(httplib::Server& server) {
  for (int i = 0; i < 500 && !server.is_running(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

class AuthRegistry {
 public:
  enum class Mode { kBearer, kBasic };
  explicit AuthRegistry(Mode mode, bool anonymous_allowed = false)
      : mode_(mode), anonymous_allowed_(anonymous_allowed) {
    port_ = server_.bind_to_any_port("127.0.0.1");
    server_.Get("/token", [this](const httplib::Request& request, httplib::Response& response) {
      token_requests_.push_back(request.get_param_value("scope") + " " +
                                request.get_param_value("service"));
      bool good =
          request.get_header_value("Authorization") == "Basic " + absl::Base64Escape("user:secret");
      if (!good && !anonymous_allowed_) {
        response.status = 401;
        return;
      }
      response.set_content(R"({"token":"good-token"})", "application/json");
    });
    server_.Get(R"(/v2/(.*))", [this](const httplib::Request& request,
                                      httplib::Response& response) {
      std::string authorization = request.get_header_value("Authorization");
      bool good = mode_ == Mode::kBearer
                      ? authorization == "Bearer good-token"
                      : authorization == "Basic " + absl::Base64Escape("user:secret");
      if (!good) {
        response.status = 401;
        response.set_header(
            "WWW-Authenticate",
            mode_ == Mode::kBearer
                ? absl::StrCat("Bearer realm=\"http://127.0.0.1:", port_,
                               "/token\",service=\"test-registry\",scope=\"repository:a/b:pull\"")
                : std::string("Basic realm=\"test\""));
        response.set_content(
            R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})",
            "application/json");
        return;
      }
      if (request.path == "/v2/a/b/blobs/sha256:" + std::string(64, '0')) {
        response.status = 307;
        response.set_header("Location", redirect_to_);
        return;
      }
      response.set_content(R"({"schemaVersion":2})", "application/vnd.oci.image.manifest.v1+json");
    });
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    WaitUntilListening(server_);
  }
  ~AuthRegistry() {
    server_.stop();
    thread_.join();
  }
  std::string Host() const { return absl::StrCat("127.0.0.1:", port_); }
  void RedirectBlobsTo(std::string url) { redirect_to_ = std::move(url); }
  const std::vector<std::string>& TokenRequests() const { return token_requests_; }

 private:
  Mode mode_;
  bool anonymous_allowed_;
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::string redirect_to_;
  std::vector<std::string> token_requests_;
};

TEST(RegistryAuthTest, BearerTokenFlowWithCredentials) {
  AuthRegistry registry(AuthRegistry::Mode::kBearer);
  RegistryClient client(DefaultEndpoint(registry.Host()), UserPassword("user", "secret"));
  auto manifest = client.FetchManifest("a/b", "v1");
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_EQ(manifest->body, R"({"schemaVersion":2})");
  ASSERT_EQ(registry.TokenRequests().size(), 1u);
  EXPECT_EQ(registry.TokenRequests()[0], "repository:a/b:pull test-registry");
  // The token is cached for the scope.
  ASSERT_TRUE(client.FetchManifest("a/b", "v1").ok());
  EXPECT_EQ(registry.TokenRequests().size(), 1u);
}

TEST(RegistryAuthTest, AnonymousTokenWhenTheRealmAllowsIt) {
  AuthRegistry registry(AuthRegistry::Mode::kBearer, /*anonymous_allowed=*/true);
  RegistryClient client(DefaultEndpoint(registry.Host()), {});
  EXPECT_TRUE(client.FetchManifest("a/b", "v1").ok());
}

TEST(RegistryAuthTest, WrongCredentialsAreUnauthenticated) {
  AuthRegistry registry(AuthRegistry::Mode::kBearer);
  RegistryClient client(DefaultEndpoint(registry.Host()), UserPassword("user", "wrong"));
  auto manifest = client.FetchManifest("a/b", "v1");
  EXPECT_EQ(manifest.status().code(), absl::StatusCode::kUnauthenticated) << manifest.status();
  EXPECT_THAT(std::string(manifest.status().message()), HasSubstr("refused the credentials"));
}

TEST(RegistryAuthTest, RegistryTokenIsSentAsItIs) {
  AuthRegistry registry(AuthRegistry::Mode::kBearer);
  Credentials token;
  token.registry_token = "good-token";
  RegistryClient client(DefaultEndpoint(registry.Host()), token);
  EXPECT_TRUE(client.FetchManifest("a/b", "v1").ok());
  EXPECT_TRUE(registry.TokenRequests().empty());
}

TEST(RegistryAuthTest, BasicAuth) {
  AuthRegistry registry(AuthRegistry::Mode::kBasic);
  RegistryClient good(DefaultEndpoint(registry.Host()), UserPassword("user", "secret"));
  EXPECT_TRUE(good.FetchManifest("a/b", "v1").ok());
  RegistryClient anonymous(DefaultEndpoint(registry.Host()), {});
  EXPECT_EQ(anonymous.FetchManifest("a/b", "v1").status().code(),
            absl::StatusCode::kUnauthenticated);
  RegistryClient wrong(DefaultEndpoint(registry.Host()), UserPassword("user", "bad"));
  EXPECT_EQ(wrong.FetchManifest("a/b", "v1").status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(RegistryAuthTest, RedirectedBlobDoesNotCarryCredentialsToTheOtherHost) {
  AuthRegistry registry(AuthRegistry::Mode::kBearer);
  httplib::Server storage;
  std::string seen_authorization = "(no request)";
  int storage_port = storage.bind_to_any_port("127.0.0.1");
  storage.Get("/blob", [&](const httplib::Request& request, httplib::Response& response) {
    seen_authorization = request.get_header_value("Authorization");
    response.set_content("blob-bytes", "application/octet-stream");
  });
  std::thread thread([&] { storage.listen_after_bind(); });
  WaitUntilListening(storage);
  registry.RedirectBlobsTo(absl::StrCat("http://127.0.0.1:", storage_port, "/blob"));

  RegistryClient client(DefaultEndpoint(registry.Host()), UserPassword("user", "secret"));
  std::string received;
  auto digest = Digest::Parse("sha256:" + std::string(64, '0'));
  absl::Status fetched = client.FetchBlob("a/b", *digest, [&](const char* data, size_t n) {
    received.append(data, n);
    return absl::OkStatus();
  });
  storage.stop();
  thread.join();
  ASSERT_TRUE(fetched.ok()) << fetched;
  EXPECT_EQ(received, "blob-bytes");
  EXPECT_EQ(seen_authorization, "");
}

// A registry stand-in over HTTPS with a certificate made for 127.0.0.1 (not in the system's
// trust store): a manifest, and a 3 MB blob that arrives in many pieces.
class TlsRegistry {
 public:
  static std::unique_ptr<TlsRegistry> Start(const std::string& dir) {
    auto registry = std::unique_ptr<TlsRegistry>(new TlsRegistry);
    registry->certificate_ = dir + "/registry.crt";
    std::string key = dir + "/registry.key";
    testing::CommandResult made = testing::RunCommand(
        {"/usr/bin/openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
         "-out", registry->certificate_, "-subj", "/CN=127.0.0.1", "-addext",
         "subjectAltName=IP:127.0.0.1", "-days", "2"});
    if (made.exit_code != 0) return nullptr;
    registry->server_ =
        std::make_unique<httplib::SSLServer>(registry->certificate_.c_str(), key.c_str());
    if (!registry->server_->is_valid()) return nullptr;
    registry->port_ = registry->server_->bind_to_any_port("127.0.0.1");
    registry->server_->Get("/v2/a/b/manifests/v1", [](const httplib::Request&,
                                                      httplib::Response& response) {
      response.set_content(R"({"schemaVersion":2})", "application/vnd.oci.image.manifest.v1+json");
    });
    registry->server_->Get(
        R"(/v2/a/b/blobs/(.*))", [](const httplib::Request&, httplib::Response& response) {
          response.set_content(std::string(3 << 20, 'b'), "application/octet-stream");
        });
    registry->thread_ =
        std::thread([server = registry->server_.get()] { server->listen_after_bind(); });
    WaitUntilListening(*registry->server_);
    return registry;
  }
  ~TlsRegistry() {
    server_->stop();
    thread_.join();
  }
  RegistryEndpoint Endpoint() const {
    RegistryEndpoint endpoint;
    endpoint.host = absl::StrCat("127.0.0.1:", port_);
    return endpoint;  // https
  }
  const std::string& Certificate() const { return certificate_; }

 private:
  TlsRegistry() = default;
  std::string certificate_;
  std::unique_ptr<httplib::SSLServer> server_;
  int port_ = 0;
  std::thread thread_;
};

TEST(RegistryTlsTest, CertificateCheckedAgainstTheConfiguredAuthority) {
  absl::StatusOr<base::TempDir> dir = base::TempDir::Create("registry-tls");
  ASSERT_TRUE(dir.ok()) << dir.status();
  std::unique_ptr<TlsRegistry> registry = TlsRegistry::Start(dir->Path());
  ASSERT_NE(registry, nullptr);

  // Not trusted by the system: refused, saying why, as a network fault (UNAVAILABLE).
  RegistryClient untrusted(registry->Endpoint(), {});
  auto refused = untrusted.FetchManifest("a/b", "v1");
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();
  EXPECT_THAT(std::string(refused.status().message()), HasSubstr("certificate"));

  // ca_file: verified and fetched, the blob in full.
  RegistryEndpoint with_ca = registry->Endpoint();
  with_ca.ca_file = registry->Certificate();
  RegistryClient trusted(with_ca, {});
  auto manifest = trusted.FetchManifest("a/b", "v1");
  ASSERT_TRUE(manifest.ok()) << manifest.status();
  EXPECT_EQ(manifest->body, R"({"schemaVersion":2})");
  size_t received = 0, pieces = 0;
  auto digest = Digest::Parse("sha256:" + std::string(64, '0'));
  absl::Status fetched = trusted.FetchBlob("a/b", *digest, [&](const char*, size_t n) {
    received += n;
    ++pieces;
    return absl::OkStatus();
  });
  EXPECT_TRUE(fetched.ok()) << fetched;
  EXPECT_EQ(received, size_t{3} << 20);
  EXPECT_GT(pieces, 1u);

  // skip_verify: no check at all.
  RegistryEndpoint unverified = registry->Endpoint();
  unverified.skip_verify = true;
  RegistryClient skipping(unverified, {});
  EXPECT_TRUE(skipping.FetchManifest("a/b", "v1").ok());

  // A sink that refuses the bytes ends the transfer with its own error.
  absl::Status stopped = trusted.FetchBlob(
      "a/b", *digest, [](const char*, size_t) { return absl::DataLossError("digest mismatch"); });
  EXPECT_EQ(stopped.code(), absl::StatusCode::kDataLoss) << stopped;
}

TEST(CredentialsTest, AuthFieldIsBase64OfUserColonPassword) {
  Credentials credentials;
  ASSERT_TRUE(DecodeAuthField(absl::Base64Escape("user:pa:ss"), credentials).ok());
  EXPECT_EQ(credentials.username, "user");
  EXPECT_EQ(credentials.password, "pa:ss");
  Credentials bad;
  EXPECT_EQ(DecodeAuthField("!!!", bad).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DecodeAuthField(absl::Base64Escape("nocolon"), bad).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kapal::images
