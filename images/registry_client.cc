#include "images/registry_client.h"

#include <arpa/inet.h>
#include <unistd.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "images/http_client.h"
#include "nlohmann/json.hpp"

namespace kapal::images {

namespace {

constexpr char kManifestAccept[] =
    "application/vnd.oci.image.index.v1+json, "
    "application/vnd.oci.image.manifest.v1+json, "
    "application/vnd.docker.distribution.manifest.list.v2+json, "
    "application/vnd.docker.distribution.manifest.v2+json";
constexpr int kMaxRedirects = 5;
constexpr size_t kMaxManifestBytes = 4 * 1024 * 1024;
constexpr size_t kMaxErrorBytes = 4096;

bool IsLoopbackHost(absl::string_view host_port) {
  std::string host(host_port);
  if (absl::StartsWith(host, "[")) {
    host = host.substr(1, host.find(']') - 1);
  } else if (size_t colon = host.rfind(':'); colon != std::string::npos) {
    host = host.substr(0, colon);
  }
  if (host == "localhost") return true;
  // Parsed, not matched by prefix: "127.example.com" is a public name.
  in_addr v4{};
  if (inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  return inet_pton(AF_INET6, host.c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

// Splits "https://host:port/path?q" into "https://host:port" and "/path?q".
std::pair<std::string, std::string> SplitUrl(const std::string& url) {
  size_t scheme_end = url.find("://");
  size_t path_start = scheme_end == std::string::npos ? 0 : url.find('/', scheme_end + 3);
  if (path_start == std::string::npos) return {url, "/"};
  return {url.substr(0, path_start), url.substr(path_start)};
}

// Parses the parameters of `Bearer realm="...",service="...",scope="..."`.
std::map<std::string, std::string> ChallengeParameters(absl::string_view text) {
  std::map<std::string, std::string> parameters;
  size_t space = text.find(' ');
  absl::string_view rest = space == absl::string_view::npos ? "" : text.substr(space + 1);
  while (!rest.empty()) {
    rest = absl::StripLeadingAsciiWhitespace(rest);
    size_t eq = rest.find('=');
    if (eq == absl::string_view::npos) break;
    std::string key = absl::AsciiStrToLower(absl::StripAsciiWhitespace(rest.substr(0, eq)));
    rest = rest.substr(eq + 1);
    std::string value;
    if (absl::StartsWith(rest, "\"")) {
      size_t i = 1;
      for (; i < rest.size() && rest[i] != '"'; ++i) {
        if (rest[i] == '\\' && i + 1 < rest.size()) ++i;
        value += rest[i];
      }
      rest = rest.substr(std::min(rest.size(), i + 1));
    } else {
      size_t comma = rest.find(',');
      value = std::string(absl::StripAsciiWhitespace(rest.substr(0, comma)));
      rest = comma == absl::string_view::npos ? "" : rest.substr(comma);
    }
    parameters[key] = value;
    rest = absl::StripLeadingAsciiWhitespace(rest);
    if (absl::StartsWith(rest, ",")) rest.remove_prefix(1);
  }
  return parameters;
}

// RFC 3986: everything but the unreserved characters as %XX.
std::string PercentEncoded(absl::string_view text) {
  std::string out;
  for (unsigned char c : text) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      absl::StrAppend(&out, "%", absl::Hex(c, absl::kZeroPad2));
    }
  }
  return out;
}

std::string Form(const std::map<std::string, std::string>& fields) {
  std::string out;
  for (const auto& [key, value] : fields) {
    if (!out.empty()) out += '&';
    absl::StrAppend(&out, PercentEncoded(key), "=", PercentEncoded(value));
  }
  return out;
}

// A registry's error body ({"errors":[{"code":"MANIFEST_UNKNOWN","message":"..."}]}) as text.
std::string ErrorText(const std::string& body) {
  nlohmann::json json = nlohmann::json::parse(body, nullptr, false);
  if (!json.is_discarded() && json.contains("errors") && json["errors"].is_array() &&
      !json["errors"].empty()) {
    const auto& first = json["errors"][0];
    return absl::StrCat(first.value("code", ""), ": ", first.value("message", ""));
  }
  return std::string(absl::StripAsciiWhitespace(body.substr(0, 200)));
}

}  // namespace

absl::Status DecodeAuthField(const std::string& auth, Credentials& credentials) {
  if (auth.empty()) return absl::OkStatus();
  std::string decoded;
  if (!absl::Base64Unescape(auth, &decoded)) {
    return absl::InvalidArgumentError("auth: not valid base64 (expected base64 of user:password)");
  }
  size_t colon = decoded.find(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        "auth: the decoded value has no ':' (expected user:password)");
  }
  if (credentials.username.empty()) credentials.username = decoded.substr(0, colon);
  if (credentials.password.empty()) credentials.password = decoded.substr(colon + 1);
  return absl::OkStatus();
}

RegistryEndpoint DefaultEndpoint(const std::string& domain) {
  RegistryEndpoint endpoint;
  endpoint.host = domain == "docker.io" ? "registry-1.docker.io" : domain;
  endpoint.plain_http = IsLoopbackHost(domain);
  return endpoint;
}

std::string RegistryClient::Response::Header(const std::string& name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return value;
  }
  return "";
}

RegistryClient::RegistryClient(RegistryEndpoint endpoint, Credentials credentials, Options options)
    : endpoint_(std::move(endpoint)), credentials_(std::move(credentials)), options_(options) {}

absl::StatusOr<RegistryClient::Response> RegistryClient::Exchange(
    const std::string& method, const std::string& url, const std::vector<std::string>& headers,
    const HttpUpload* upload, size_t limit, Overflow overflow, const BlobSink* sink,
    int sink_status) const {
  HttpOptions options{options_.connect_timeout, options_.read_timeout, !endpoint_.skip_verify,
                      endpoint_.ca_file};
  std::vector<std::string> sent = {"User-Agent: kapal"};
  sent.insert(sent.end(), headers.begin(), headers.end());
  Response response;
  absl::Status sink_result;
  absl::Status ran = HttpRequest(
      method, url, sent, upload, options,
      [&](int status, std::multimap<std::string, std::string> fields) {
        response.status = status;
        response.headers = std::move(fields);
      },
      [&](const char* data, size_t length) {
        if (sink != nullptr && response.status == sink_status) {
          sink_result = (*sink)(data, length);
          return sink_result.ok();
        }
        if (sink != nullptr && sink_status == 206 && response.status == 200) {
          // Asked for a range, sent the whole blob: not read any further.
          sink_result = absl::FailedPreconditionError(
              absl::StrCat(endpoint_.host, " does not serve byte ranges"));
          return false;
        }
        if (response.body.size() + length > limit) {
          if (overflow == Overflow::kTruncate) {
            response.body.append(data, limit - response.body.size());
            return true;  // the rest is read and dropped
          }
          sink_result = absl::InvalidArgumentError(
              absl::StrCat(url, ": response larger than ", limit, " bytes"));
          return false;
        }
        response.body.append(data, length);
        return true;
      });
  if (!sink_result.ok()) return sink_result;
  if (!ran.ok()) return ran;
  return response;
}

absl::StatusOr<RegistryClient::Response> RegistryClient::GetOnce(
    const std::string& base_url, const std::string& path, const std::string& accept,
    const std::string& authorization, const BlobSink* sink, const std::string& range) {
  std::vector<std::string> headers;
  if (!accept.empty()) headers.push_back("Accept: " + accept);
  if (!authorization.empty()) headers.push_back("Authorization: " + authorization);
  if (!range.empty()) headers.push_back("Range: " + range);
  return Exchange("GET", base_url + path, headers, nullptr,
                  sink != nullptr ? kMaxErrorBytes : kMaxManifestBytes, Overflow::kFail, sink,
                  range.empty() ? 200 : 206);
}

absl::StatusOr<std::string> RegistryClient::Authorize(const std::string& challenge,
                                                      const std::string& scope) {
  if (absl::StartsWithIgnoreCase(challenge, "basic")) {
    if (credentials_.username.empty()) {
      return absl::UnauthenticatedError(
          absl::StrCat(endpoint_.host, " requires a user name and password"));
    }
    return absl::StrCat("Basic ",
                        absl::Base64Escape(credentials_.username + ":" + credentials_.password));
  }
  if (!absl::StartsWithIgnoreCase(challenge, "bearer")) {
    return absl::UnauthenticatedError(
        absl::StrCat(endpoint_.host, ": unsupported authentication challenge \"", challenge, "\""));
  }
  if (!credentials_.registry_token.empty()) return "Bearer " + credentials_.registry_token;
  std::map<std::string, std::string> parameters = ChallengeParameters(challenge);
  std::string realm = parameters["realm"];
  if (realm.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(endpoint_.host, ": Bearer challenge without realm"));
  }
  // The scope we need, or the one the registry named.
  std::string wanted_scope = parameters.contains("scope") ? parameters["scope"] : scope;
  absl::StatusOr<Response> result;
  if (!credentials_.identity_token.empty()) {
    // OAuth2 refresh-token grant, as docker does with an identity token.
    std::map<std::string, std::string> form = {{"grant_type", "refresh_token"},
                                               {"refresh_token", credentials_.identity_token},
                                               {"service", parameters["service"]},
                                               {"scope", wanted_scope},
                                               {"client_id", "kapal"}};
    HttpUpload body;
    body.content_type = "application/x-www-form-urlencoded";
    body.bytes = Form(form);
    result = Exchange("POST", realm, {}, &body, kMaxManifestBytes, Overflow::kFail, nullptr);
  } else {
    std::map<std::string, std::string> query = {{"service", parameters["service"]},
                                                {"scope", wanted_scope}};
    std::vector<std::string> headers;
    if (!credentials_.username.empty()) {
      headers.push_back("Authorization: Basic " +
                        absl::Base64Escape(credentials_.username + ":" + credentials_.password));
    }
    std::string separator = absl::StrContains(realm, "?") ? "&" : "?";
    result = Exchange("GET", realm + separator + Form(query), headers, nullptr, kMaxManifestBytes,
                      Overflow::kFail, nullptr);
  }
  if (!result.ok()) {
    return absl::Status(result.status().code(),
                        absl::StrCat("token server: ", result.status().message()));
  }
  if (result->status == 401 || result->status == 403) {
    return absl::UnauthenticatedError(
        absl::StrCat("token server ", realm, " refused the ",
                     credentials_.Empty() ? "anonymous request" : "credentials", " (HTTP ",
                     result->status, ")"));
  }
  if (result->status != 200) {
    return absl::UnavailableError(absl::StrCat("token server ", realm, ": HTTP ", result->status));
  }
  nlohmann::json token = nlohmann::json::parse(result->body, nullptr, false);
  std::string value;
  if (!token.is_discarded() && token.is_object()) {
    value = token.value("token", token.value("access_token", ""));
  }
  if (value.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("token server ", realm, " returned no token"));
  }
  return "Bearer " + value;
}

absl::StatusOr<RegistryClient::Response> RegistryClient::Get(const std::string& repository,
                                                             const std::string& path,
                                                             const std::string& accept,
                                                             const BlobSink* sink,
                                                             const std::string& range) {
  std::string scope = absl::StrCat("repository:", repository, ":pull");
  std::string authorization;
  {
    std::lock_guard lock(tokens_mutex_);
    if (auto found = authorization_by_scope_.find(scope); found != authorization_by_scope_.end()) {
      authorization = found->second;
    }
  }
  std::string base_url = endpoint_.Url();
  std::string current_path = path;
  bool authorized_once = false;
  for (int redirects = 0; redirects <= kMaxRedirects;) {
    // Credentials go only to the registry itself, never to a host it redirects to.
    bool same_host = base_url == endpoint_.Url();
    absl::StatusOr<Response> response =
        GetOnce(base_url, current_path, accept, same_host ? authorization : "", sink, range);
    if (!response.ok()) return response.status();
    int status = response->status;
    if (status == 401 && same_host && !authorized_once) {
      authorized_once = true;
      absl::StatusOr<std::string> granted = Authorize(response->Header("WWW-Authenticate"), scope);
      if (!granted.ok()) return granted.status();
      authorization = *granted;
      std::lock_guard lock(tokens_mutex_);
      authorization_by_scope_[scope] = authorization;
      continue;
    }
    if (status >= 300 && status < 400) {
      std::string location = response->Header("Location");
      if (location.empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(base_url, current_path, ": redirect without Location"));
      }
      if (absl::StartsWith(location, "/")) {
        current_path = location;
      } else {
        std::tie(base_url, current_path) = SplitUrl(location);
      }
      ++redirects;
      continue;
    }
    if (status == 200 || (status == 206 && !range.empty())) return response;
    std::string what = absl::StrCat(endpoint_.host, "/", repository, ": ", path, ": HTTP ", status);
    std::string detail = ErrorText(response->body);
    if (!detail.empty()) absl::StrAppend(&what, " (", detail, ")");
    if (status == 401) return absl::UnauthenticatedError(what);
    if (status == 403) return absl::PermissionDeniedError(what);
    if (status == 404) return absl::NotFoundError(what);
    if (status == 429 || status >= 500) return absl::UnavailableError(what);
    return absl::InvalidArgumentError(what);
  }
  return absl::UnavailableError(
      absl::StrCat(endpoint_.host, path, ": more than ", kMaxRedirects, " redirects"));
}

absl::StatusOr<FetchedManifest> RegistryClient::FetchManifest(const std::string& repository,
                                                              const std::string& reference) {
  absl::StatusOr<Response> response =
      Get(repository, absl::StrCat("/v2/", repository, "/manifests/", reference), kManifestAccept,
          nullptr);
  if (!response.ok()) return response.status();
  std::string content_type = response->Header("Content-Type");
  Digest body_digest = Digest::Sha256Of(response->body);
  FetchedManifest manifest{content_type.substr(0, content_type.find(';')),
                           std::move(response->body), std::move(body_digest)};
  if (absl::StatusOr<Digest> wanted = Digest::Parse(reference); wanted.ok()) {
    absl::StatusOr<Hasher> hasher = Hasher::ForAlgorithm(wanted->Algorithm());
    if (!hasher.ok()) return hasher.status();
    hasher->Update(manifest.body.data(), manifest.body.size());
    Digest actual = hasher->Finish();
    if (actual != *wanted) {
      return absl::DataLossError(absl::StrCat("manifest ", repository, "@", wanted->String(),
                                              ": digest mismatch (got ", actual.String(), ")"));
    }
    manifest.digest = *wanted;
  }
  return manifest;
}

absl::Status RegistryClient::FetchBlob(const std::string& repository, const Digest& digest,
                                       const BlobSink& sink) {
  absl::StatusOr<Response> response =
      Get(repository, absl::StrCat("/v2/", repository, "/blobs/", digest.String()), "", &sink);
  return response.status();
}

absl::Status RegistryClient::FetchBlobRange(const std::string& repository, const Digest& digest,
                                            int64_t offset, int64_t length, const BlobSink& sink) {
  absl::StatusOr<Response> response =
      Get(repository, absl::StrCat("/v2/", repository, "/blobs/", digest.String()), "", &sink,
          absl::StrCat("bytes=", offset, "-", offset + length - 1));
  return response.status();
}

}  // namespace kapal::images

namespace kapal::images {

absl::Status RegistryClient::ErrorOf(const std::string& what, const Response& response) const {
  std::string text = absl::StrCat(endpoint_.host, ": ", what, ": HTTP ", response.status);
  std::string detail = ErrorText(response.body);
  if (!detail.empty()) absl::StrAppend(&text, " (", detail, ")");
  if (response.status == 401) return absl::UnauthenticatedError(text);
  if (response.status == 403) return absl::PermissionDeniedError(text);
  if (response.status == 404) return absl::NotFoundError(text);
  if (response.status == 429 || response.status >= 500) return absl::UnavailableError(text);
  return absl::InvalidArgumentError(text);
}

absl::StatusOr<RegistryClient::Response> RegistryClient::Send(const std::string& method,
                                                              const std::string& repository,
                                                              const std::string& target,
                                                              const HttpUpload& payload) {
  std::string scope = absl::StrCat("repository:", repository, ":pull,push");
  std::string base_url = endpoint_.Url();
  std::string path = target;
  if (!absl::StartsWith(target, "/")) std::tie(base_url, path) = SplitUrl(target);
  // Credentials go only to the registry itself, never to a host an upload URL names.
  bool same_host = base_url == endpoint_.Url();
  std::string authorization;
  {
    std::lock_guard lock(tokens_mutex_);
    if (auto found = authorization_by_scope_.find(scope); found != authorization_by_scope_.end()) {
      authorization = found->second;
    }
  }
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::vector<std::string> headers;
    if (same_host && !authorization.empty()) headers.push_back("Authorization: " + authorization);
    // Only error texts come back from these requests: what is past kMaxErrorBytes is dropped.
    absl::StatusOr<Response> sent =
        Exchange(method, base_url + path, headers, method == "HEAD" ? nullptr : &payload,
                 kMaxErrorBytes, Overflow::kTruncate, nullptr);
    if (!sent.ok()) return sent.status();
    Response& response = *sent;
    if (response.status == 401 && same_host && attempt == 0) {
      absl::StatusOr<std::string> granted = Authorize(response.Header("WWW-Authenticate"), scope);
      if (!granted.ok()) return granted.status();
      authorization = *granted;
      std::lock_guard lock(tokens_mutex_);
      authorization_by_scope_[scope] = authorization;
      continue;
    }
    return response;
  }
  return absl::UnauthenticatedError(
      absl::StrCat(endpoint_.host, ": push of ", repository, " refused the credentials"));
}

absl::StatusOr<bool> RegistryClient::HasBlob(const std::string& repository, const Digest& digest) {
  absl::StatusOr<Response> response =
      Send("HEAD", repository, absl::StrCat("/v2/", repository, "/blobs/", digest.String()), {});
  if (!response.ok()) return response.status();
  if (response->status == 200) return true;
  if (response->status == 404) return false;
  return ErrorOf("HEAD blob " + digest.String(), *response);
}

absl::StatusOr<bool> RegistryClient::PushBlob(const std::string& repository, const Digest& digest,
                                              const std::string& path, int64_t size,
                                              const std::string& mount_from,
                                              const std::function<void(int64_t)>& progress) {
  std::string start = absl::StrCat("/v2/", repository, "/blobs/uploads/");
  if (!mount_from.empty() && mount_from != repository) {
    absl::StrAppend(&start, "?mount=", digest.String(), "&from=", mount_from);
  }
  HttpUpload empty;
  empty.content_type = "application/octet-stream";
  absl::StatusOr<Response> started = Send("POST", repository, start, empty);
  if (!started.ok()) return started.status();
  if (started->status == 201) return true;  // mounted from the other repository
  if (started->status != 202) return ErrorOf("start an upload of " + digest.String(), *started);
  std::string location = started->Header("Location");
  if (location.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(endpoint_.host, ": an upload of ", digest.String(), " without Location"));
  }
  absl::StrAppend(&location, absl::StrContains(location, "?") ? "&" : "?",
                  "digest=", digest.String());
  HttpUpload bytes;
  bytes.content_type = "application/octet-stream";
  bytes.path = path;
  bytes.size = size;
  bytes.progress = progress;
  absl::StatusOr<Response> finished = Send("PUT", repository, location, bytes);
  if (!finished.ok()) return finished.status();
  if (finished->status != 201) return ErrorOf("upload " + digest.String(), *finished);
  return false;
}

absl::Status RegistryClient::PushManifest(const std::string& repository,
                                          const std::string& reference,
                                          const std::string& media_type, const std::string& body) {
  HttpUpload manifest;
  manifest.content_type = media_type;
  manifest.bytes = body;
  absl::StatusOr<Response> response =
      Send("PUT", repository, absl::StrCat("/v2/", repository, "/manifests/", reference), manifest);
  if (!response.ok()) return response.status();
  if (response->status != 201 && response->status != 200) {
    return ErrorOf("put manifest " + reference, *response);
  }
  return absl::OkStatus();
}

}  // namespace kapal::images
