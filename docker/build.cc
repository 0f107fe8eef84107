// POST /build: the classic builder protocol of the Docker 20.10 CLI. The context arrives as a
// tar body (the CLI applied .dockerignore), the build runs in the core's builder, and the
// answer streams {"stream": ...} lines, {"aux": {"ID": ...}} and {"errorDetail": ...} on failure.
// POST /commit: a container as an image, by the same builder.

#include <cstring>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "docker/api_impl.h"

namespace kapal::docker {

namespace {

// A JSON object of strings in a query parameter (buildargs, labels). Docker sends null for a
// build arg named without a value and not set in the client's environment: it is left out.
absl::StatusOr<std::map<std::string, std::string>> StringMap(const Request& request,
                                                             const std::string& name) {
  std::map<std::string, std::string> out;
  std::string text = request.Query(name);
  if (text.empty()) return out;
  nlohmann::json parsed = nlohmann::json::parse(text, nullptr, false);
  if (!parsed.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(name, " must be a JSON object"));
  }
  for (const auto& [key, value] : parsed.items()) {
    if (value.is_null()) continue;
    if (!value.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": the value of ", key, " must be a string"));
    }
    out[key] = value.get<std::string>();
  }
  return out;
}

// X-Registry-Config: base64url JSON of AuthConfigs by registry host.
std::map<std::string, images::Credentials> RegistryConfig(const Request& request) {
  std::map<std::string, images::Credentials> out;
  std::string header = request.Header("x-registry-config");
  std::string decoded;
  if (header.empty() ||
      (!absl::WebSafeBase64Unescape(header, &decoded) && !absl::Base64Unescape(header, &decoded))) {
    return out;
  }
  nlohmann::json parsed = nlohmann::json::parse(decoded, nullptr, false);
  if (!parsed.is_object()) return out;
  for (const auto& [host, auth] : parsed.items()) {
    std::string key = host;
    // Docker Hub's config key is its v1 index URL.
    if (absl::StrContains(key, "index.docker.io")) key = "docker.io";
    for (const char* scheme : {"https://", "http://"}) {
      if (absl::StartsWith(key, scheme)) key = key.substr(std::strlen(scheme));
    }
    if (size_t slash = key.find('/'); slash != std::string::npos) key = key.substr(0, slash);
    out[key] = CredentialsFromJson(auth);
  }
  return out;
}

}  // namespace

void Api::Impl::BuildImage(const Request& request, Responder& responder) {
  if (!request.Query("remote").empty()) {
    return responder.Error(400, "kapal builds from an uploaded context only (no remote URL)");
  }
  builder::BuildOptions build;
  build.tags = request.QueryValues("t");
  build.dockerfile = request.Query("dockerfile", "Dockerfile");
  build.target = request.Query("target");
  build.no_cache = request.QueryFlag("nocache");
  build.pull = request.QueryFlag("pull");
  build.network_mode = request.Query("networkmode");
  build.credentials = RegistryConfig(request);
  absl::StatusOr<std::map<std::string, std::string>> args = StringMap(request, "buildargs");
  if (!args.ok()) return ReplyError(responder, args.status());
  build.build_args = *args;
  absl::StatusOr<std::map<std::string, std::string>> labels = StringMap(request, "labels");
  if (!labels.ok()) return ReplyError(responder, labels.status());
  build.labels = *labels;
  bool quiet = request.QueryFlag("q");
  if (request.body_file.empty()) return responder.Error(400, "the build context is missing");
  absl::StatusOr<base::TempDir> context = builder.UnpackContext(request.body_file);
  if (!context.ok()) return ReplyError(responder, context.status());
  build.context_dir = context->Path();

  if (!responder.StartStream(200, "application/json")) return;
  bool gone = false;
  auto send = [&](const nlohmann::json& message) {
    if (!gone && !responder.WriteChunk(message.dump() + "\r\n")) gone = true;
  };
  builder::BuildOutput output = [&](const std::string& text) {
    if (!quiet) send({{"stream", text}});
  };
  builder::BuildCancelled cancelled = [&] { return gone || responder.ClientGone(); };
  absl::StatusOr<builder::BuildResult> built = builder.Build(build, output, cancelled);
  if (!built.ok()) {
    std::string message(built.status().message());
    nlohmann::json detail = {{"message", message}};
    // The CLI exits with this code, as with dockerd's classic builder.
    if (std::optional<int> code = builder::RunExitCodeOf(built.status())) detail["code"] = *code;
    send({{"errorDetail", detail}, {"error", message}});
  } else {
    send({{"aux", {{"ID", built->image_id}}}});
    if (quiet) send({{"stream", built->image_id + "\n"}});
  }
  responder.EndStream();
}

void Api::Impl::CommitContainer(const Request& request, Responder& responder) {
  absl::StatusOr<DockerContainer> found = FindContainer(request.Query("container"));
  if (!found.ok()) return ReplyError(responder, found.status());
  builder::CommitOptions commit;
  commit.container_id = found->container.id;
  std::string repository = request.Query("repo");
  if (!repository.empty()) {
    std::string tag = request.Query("tag");
    commit.reference = tag.empty() ? repository : repository + ":" + tag;
  }
  commit.comment = request.Query("comment");
  commit.author = request.Query("author");
  commit.changes = request.QueryValues("changes");
  // The CLI sends pause=0 for --pause=false; absent means pause.
  std::string pause = request.Query("pause");
  commit.pause = pause != "0" && pause != "false";
  absl::StatusOr<std::string> id = builder.Commit(commit);
  if (!id.ok()) return ReplyError(responder, id.status());
  responder.Json(201, {{"Id", *id}});
}

}  // namespace kapal::docker
