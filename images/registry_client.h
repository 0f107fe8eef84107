#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "images/digest.h"

namespace kapal::images {

// Credentials for one registry, as CRI's AuthConfig carries them.
struct Credentials {
  std::string username;
  std::string password;
  std::string identity_token;  // an OAuth2 refresh token, exchanged at the token realm
  std::string registry_token;  // a bearer token sent as it is
  bool Empty() const {
    return username.empty() && password.empty() && identity_token.empty() && registry_token.empty();
  }
};

// AuthConfig.auth is base64("user:password"); it fills username and password when they are
// empty. Malformed base64 or no ':' is INVALID_ARGUMENT.
absl::Status DecodeAuthField(const std::string& auth, Credentials& credentials);

// How to reach one registry host.
struct RegistryEndpoint {
  std::string host;          // "registry-1.docker.io", "127.0.0.1:5000"
  bool plain_http = false;   // http:// instead of https://
  bool skip_verify = false;  // https without certificate verification
  std::string ca_file;       // extra CA bundle for https
  std::string Url() const { return (plain_http ? "http://" : "https://") + host; }
};

// The registry host that serves a reference's domain: docker.io is served by
// registry-1.docker.io; loopback hosts (127.0.0.0/8, localhost, [::1]) speak plain HTTP, as
// Docker allows without configuration.
RegistryEndpoint DefaultEndpoint(const std::string& domain);

struct FetchedManifest {
  std::string media_type;
  std::string body;
  Digest digest;  // of body
};

struct HttpUpload;

// Receives a blob's bytes as they arrive.
using BlobSink = std::function<absl::Status(const char* data, size_t size)>;

// A client for one registry endpoint (OCI distribution spec / Docker Registry HTTP API v2).
// Handles the WWW-Authenticate challenge (Bearer token flow with realm, service and scope, or
// Basic), caches tokens per scope, and follows redirects itself so that credentials never go to
// another host. Errors: NOT_FOUND (unknown manifest or blob), UNAUTHENTICATED /
// PERMISSION_DENIED (credentials), UNAVAILABLE (network or 5xx: worth retrying),
// DATA_LOSS (content that does not match its digest), INVALID_ARGUMENT (bad server answer).
class RegistryClient {
 public:
  struct Options {
    std::chrono::seconds connect_timeout{10};
    std::chrono::seconds read_timeout{60};
  };
  RegistryClient(RegistryEndpoint endpoint, Credentials credentials, Options options);
  RegistryClient(RegistryEndpoint endpoint, Credentials credentials)
      : RegistryClient(std::move(endpoint), std::move(credentials), Options{}) {}

  // GET /v2/REPOSITORY/manifests/REFERENCE (a tag or a digest), accepting OCI index and
  // manifest and Docker manifest list and schema2. A digest reference is verified.
  absl::StatusOr<FetchedManifest> FetchManifest(const std::string& repository,
                                                const std::string& reference);

  // GET /v2/REPOSITORY/blobs/DIGEST, streamed into SINK. The caller verifies the content (the
  // content store's BlobWriter does).
  absl::Status FetchBlob(const std::string& repository, const Digest& digest, const BlobSink& sink);
  // The LENGTH bytes of the blob from OFFSET (a Range request), streamed into SINK.
  // FAILED_PRECONDITION when the registry answers with the whole blob instead (it does not
  // serve ranges); nothing more is read then.
  absl::Status FetchBlobRange(const std::string& repository, const Digest& digest, int64_t offset,
                              int64_t length, const BlobSink& sink);

  // The push side (scope pull,push). HEAD /v2/REPOSITORY/blobs/DIGEST: whether it is there.
  absl::StatusOr<bool> HasBlob(const std::string& repository, const Digest& digest);
  // Uploads the SIZE bytes of the file at PATH as DIGEST: POST an upload, then one PUT with the
  // bytes (PROGRESS gets the bytes sent so far). With MOUNT_FROM, the registry is asked to mount
  // the blob from that repository first; true when it did (nothing was sent).
  absl::StatusOr<bool> PushBlob(const std::string& repository, const Digest& digest,
                                const std::string& path, int64_t size,
                                const std::string& mount_from,
                                const std::function<void(int64_t)>& progress);
  // PUT /v2/REPOSITORY/manifests/REFERENCE with BODY as MEDIA_TYPE.
  absl::Status PushManifest(const std::string& repository, const std::string& reference,
                            const std::string& media_type, const std::string& body);

  const RegistryEndpoint& Endpoint() const { return endpoint_; }

 private:
  struct Response {
    int status = 0;
    std::multimap<std::string, std::string> headers;
    std::string body;  // whole body for manifests and errors; empty when streamed to a sink
    std::string Header(const std::string& name) const;
  };
  // One request; the answer's body goes to SINK when its status is SINK_STATUS (200, or 206 for
  // a range) and SINK is given, else it is kept up to LIMIT bytes: a longer one fails (kFail)
  // or is cut there (kTruncate).
  enum class Overflow { kFail, kTruncate };
  absl::StatusOr<Response> Exchange(const std::string& method, const std::string& url,
                                    const std::vector<std::string>& headers,
                                    const HttpUpload* upload, size_t limit, Overflow overflow,
                                    const BlobSink* sink, int sink_status = 200) const;
  // RANGE: a Range header's value ("bytes=A-B"), or "" for the whole resource.
  absl::StatusOr<Response> Get(const std::string& repository, const std::string& path,
                               const std::string& accept, const BlobSink* sink,
                               const std::string& range = "");
  absl::StatusOr<Response> GetOnce(const std::string& base_url, const std::string& path,
                                   const std::string& accept, const std::string& authorization,
                                   const BlobSink* sink, const std::string& range);
  absl::StatusOr<std::string> Authorize(const std::string& challenge, const std::string& scope);
  // METHOD on TARGET (a path, or an absolute URL the registry gave) with push credentials and
  // PAYLOAD (a small body, or a file streamed), again once with a token after a 401. The
  // response whatever its status.
  absl::StatusOr<Response> Send(const std::string& method, const std::string& repository,
                                const std::string& target, const HttpUpload& payload);
  absl::Status ErrorOf(const std::string& what, const Response& response) const;

  RegistryEndpoint endpoint_;
  Credentials credentials_;
  Options options_;
  std::mutex tokens_mutex_;
  std::map<std::string, std::string> authorization_by_scope_;
};

}  // namespace kapal::images
