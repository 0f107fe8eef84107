// The image endpoints of the Docker API: list, pull (with Docker's streamed progress), inspect,
// tag, remove, push.

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "docker/api_impl.h"
#include "images/reference.h"

namespace kapal::docker {

namespace {

int64_t CreatedSeconds(const nlohmann::json& document) {
  std::string created = document.value("created", "");
  absl::Time time;
  std::string error;
  if (created.empty() || !absl::ParseTime(absl::RFC3339_full, created, &time, &error)) return 0;
  return absl::ToUnixSeconds(time);
}

std::vector<std::string> Familiar(const std::vector<std::string>& references) {
  std::vector<std::string> out;
  for (const std::string& reference : references) out.push_back(FamiliarReference(reference));
  return out;
}

std::string ShortDigest(const std::string& digest) {
  size_t colon = digest.find(':');
  std::string hex = colon == std::string::npos ? digest : digest.substr(colon + 1);
  return hex.substr(0, 12);
}

// Docker's progress bar: "[=====>      ]  1.2MB/3.4MB".
std::string ProgressBar(int64_t done, int64_t total) {
  if (total <= 0) return "";
  constexpr int kWidth = 50;
  int filled = static_cast<int>(done * kWidth / total);
  std::string bar(static_cast<size_t>(filled), '=');
  if (filled < kWidth) bar += '>';
  bar.resize(kWidth, ' ');
  auto human = [](int64_t bytes) {
    if (bytes >= 1000 * 1000) return absl::StrCat(absl::StrFormat("%.1f", bytes / 1e6), "MB");
    if (bytes >= 1000) return absl::StrCat(absl::StrFormat("%.1f", bytes / 1e3), "kB");
    return absl::StrCat(bytes, "B");
  };
  return absl::StrCat("[", bar, "]  ", human(done), "/", human(total));
}

// Docker's streamed JSON messages (pull and push progress), sent from the transfer threads.
class ProgressStream {
 public:
  explicit ProgressStream(Responder& responder) : responder_(responder) {}

  void Send(const nlohmann::json& message) {
    std::lock_guard lock(mutex_);
    if (client_gone_) return;
    if (!responder_.WriteChunk(message.dump() + "\r\n")) client_gone_ = true;
  }
  // A step of blob ID ("Already exists", "Pushed", ...).
  void Step(const std::string& status, const std::string& id) {
    Send({{"status", status}, {"progressDetail", nlohmann::json::object()}, {"id", id}});
  }
  // Bytes moved so far, at most every 100 ms per blob: a fast transfer would flood the terminal.
  void Bytes(const std::string& status, const std::string& id, int64_t done, int64_t total) {
    {
      std::lock_guard lock(mutex_);
      auto now = std::chrono::steady_clock::now();
      auto& last = last_update_[id];
      if (now - last < std::chrono::milliseconds(100)) return;
      last = now;
    }
    Send({{"status", status},
          {"progressDetail", {{"current", done}, {"total", total}}},
          {"progress", ProgressBar(done, total)},
          {"id", id}});
  }
  // Docker's error message, which makes the CLI fail, and the end of the stream.
  void Fail(const absl::Status& status) {
    std::string message = std::string(status.message());
    Send({{"errorDetail", {{"message", message}}}, {"error", message}});
    responder_.EndStream();
  }

 private:
  Responder& responder_;
  std::mutex mutex_;
  bool client_gone_ = false;
  std::map<std::string, std::chrono::steady_clock::time_point> last_update_;
};

// Docker's answer for an image that cannot be found by NAME: 404 "No such image: NAME".
void ReplyImageError(Responder& responder, const std::string& name, const absl::Status& status) {
  if (absl::IsNotFound(status)) {
    return responder.Error(404, absl::StrCat("No such image: ", name));
  }
  ReplyError(responder, status);
}

}  // namespace

images::Credentials CredentialsFromJson(const nlohmann::json& auth) {
  images::Credentials credentials;
  if (!auth.is_object()) return credentials;
  credentials.username = auth.value("username", "");
  credentials.password = auth.value("password", "");
  credentials.identity_token = auth.value("identitytoken", "");
  credentials.registry_token = auth.value("registrytoken", "");
  return credentials;
}

// X-Registry-Auth: base64url JSON {username, password, serveraddress, identitytoken,
// registrytoken}; absent or "{}" is anonymous.
images::Credentials CredentialsOf(const Request& request) {
  std::string header = request.Header("x-registry-auth");
  if (header.empty()) return images::Credentials();
  std::string decoded;
  if (!absl::WebSafeBase64Unescape(header, &decoded) && !absl::Base64Unescape(header, &decoded)) {
    return images::Credentials();
  }
  return CredentialsFromJson(nlohmann::json::parse(decoded, nullptr, false));
}

void Api::Impl::ListImages(const Request& request, Responder& responder) {
  bool dangling_only = absl::StrContains(request.Query("filters"), "\"dangling\"") &&
                       absl::StrContains(request.Query("filters"), "\"true\"");
  // Untagged images that build steps were built on are Docker's intermediate images: shown
  // only with -a.
  bool all = request.QueryFlag("all");
  std::set<std::string> intermediate = builder.IntermediateImages();
  std::map<std::string, int> users;
  for (const runtime::Container& c : runtime.ListContainers()) ++users[c.image_id];
  nlohmann::json list = nlohmann::json::array();
  for (const images::ImageRecord& image : runtime.images().List()) {
    if (dangling_only && !image.repo_tags.empty()) continue;
    if (!all && image.repo_tags.empty() && intermediate.count(image.id.String()) != 0) continue;
    nlohmann::json document = nlohmann::json::parse(image.config_json, nullptr, false);
    if (!document.is_object()) document = nlohmann::json::object();
    nlohmann::json labels = ImageConfigOf(image.config_json).value("Labels", nlohmann::json());
    list.push_back({{"Id", image.id.String()},
                    {"ParentId", ""},
                    {"RepoTags", Familiar(image.repo_tags)},
                    {"RepoDigests", Familiar(image.repo_digests)},
                    {"Created", CreatedSeconds(document)},
                    {"Size", image.size},
                    {"VirtualSize", image.size},
                    {"SharedSize", -1},
                    {"Labels", labels.is_object() ? labels : nlohmann::json()},
                    {"Containers", users[image.id.String()]}});
  }
  responder.Json(200, list);
}

void Api::Impl::PullImage(const Request& request, Responder& responder) {
  std::string from = request.Query("fromImage");
  if (from.empty()) {
    return responder.Error(501,
                           "images/create imports only from a registry (fromImage); "
                           "fromSrc is not supported by kapal yet");
  }
  std::string tag = request.Query("tag");
  std::string reference = from;
  if (!tag.empty()) {
    reference += absl::StartsWith(tag, "sha256:") ? "@" + tag : ":" + tag;
  }
  absl::StatusOr<images::Reference> parsed = images::ParseReference(reference);
  if (!parsed.ok()) return ReplyError(responder, parsed.status());
  bool had_it = runtime.images().Find(parsed->String()).ok();
  if (!responder.StartStream(200, "application/json")) return;
  ProgressStream stream(responder);
  stream.Send({{"status", absl::StrCat("Pulling from ", parsed->path)},
               {"id", parsed->tag.empty() ? parsed->digest->String() : parsed->tag}});
  images::ProgressCallback progress = [&](const images::LayerProgress& layer) {
    std::string id = ShortDigest(layer.digest);
    if (layer.cached) return stream.Step("Already exists", id);
    if (layer.total > 0 && layer.done >= layer.total) return stream.Step("Download complete", id);
    stream.Bytes("Downloading", id, layer.done, layer.total);
  };
  absl::StatusOr<images::ImageRecord> image =
      runtime.images().Pull(parsed->String(), CredentialsOf(request), progress);
  if (!image.ok()) return stream.Fail(image.status());
  std::string familiar = FamiliarReference(parsed->String());
  stream.Send({{"status", absl::StrCat("Digest: ", image->manifest_digest.String())}});
  stream.Send({{"status", had_it ? absl::StrCat("Status: Image is up to date for ", familiar)
                                 : absl::StrCat("Status: Downloaded newer image for ", familiar)}});
  responder.EndStream();
}

void Api::Impl::InspectImage(const std::string& name, Responder& responder) {
  absl::StatusOr<images::ImageRecord> image = runtime.images().Find(name);
  if (!image.ok()) return ReplyImageError(responder, name, image.status());
  nlohmann::json document = nlohmann::json::parse(image->config_json, nullptr, false);
  if (!document.is_object()) document = nlohmann::json::object();
  nlohmann::json config = ImageConfigOf(image->config_json);
  nlohmann::json layers = nlohmann::json::array();
  if (document.contains("rootfs") && document["rootfs"].is_object()) {
    layers = document["rootfs"].value("diff_ids", nlohmann::json::array());
  }
  responder.Json(200, {{"Id", image->id.String()},
                       {"RepoTags", Familiar(image->repo_tags)},
                       {"RepoDigests", Familiar(image->repo_digests)},
                       {"Parent", ""},
                       {"Comment", document.value("comment", "")},
                       {"Created", document.value("created", "")},
                       {"Container", ""},
                       {"ContainerConfig", nlohmann::json::object()},
                       {"DockerVersion", document.value("docker_version", "")},
                       {"Author", document.value("author", "")},
                       {"Config", config},
                       {"Architecture", document.value("architecture", "")},
                       {"Os", document.value("os", "")},
                       {"Size", image->size},
                       {"VirtualSize", image->size},
                       {"GraphDriver", {{"Name", options.storage_driver}, {"Data", nullptr}}},
                       {"RootFS", {{"Type", "layers"}, {"Layers", layers}}},
                       {"Metadata", {{"LastTagTime", DockerTime(0)}}}});
}

void Api::Impl::TagImage(const std::string& name, const Request& request, Responder& responder) {
  std::string repo = request.Query("repo");
  std::string tag = request.Query("tag", "latest");
  if (repo.empty()) return responder.Error(400, "tag needs repo");
  absl::StatusOr<images::ImageRecord> tagged =
      runtime.images().Tag(name, absl::StrCat(repo, ":", tag.empty() ? "latest" : tag));
  if (!tagged.ok()) return ReplyImageError(responder, name, tagged.status());
  responder.Empty(201);
}

void Api::Impl::RemoveImage(const std::string& name, const Request& request, Responder& responder) {
  absl::StatusOr<images::ImageRecord> image = runtime.images().Find(name);
  if (!image.ok()) return ReplyImageError(responder, name, image.status());
  bool force = request.QueryFlag("force");
  absl::StatusOr<images::Reference> as_reference = images::ParseReference(name);
  bool by_tag = as_reference.ok() && std::find(image->repo_tags.begin(), image->repo_tags.end(),
                                               as_reference->String()) != image->repo_tags.end();
  // Untagging one of several tags never touches the image itself.
  bool untag_only = by_tag && image->repo_tags.size() > 1;
  if (!untag_only) {
    for (const runtime::Container& c : runtime.ListContainers()) {
      if (c.image_id != image->id.String()) continue;
      // Also with --force: an image's layers are the lower layers of its containers' root
      // filesystems, so kapal removes it only when no container uses it.
      std::string short_id = c.id.substr(0, 12);
      std::string image_short = ShortDigest(image->id.String());
      return responder.Error(
          409, absl::StrCat("conflict: unable to remove ", by_tag ? "repository reference \"" : "",
                            by_tag ? name + "\"" : image_short, force ? "" : " (must force)",
                            " - container ", short_id, " is using its referenced image ",
                            image_short, force ? "; remove the container first" : ""));
    }
  }
  nlohmann::json report = nlohmann::json::array();
  if (by_tag) {
    report.push_back({{"Untagged", FamiliarReference(as_reference->String())}});
  } else {
    for (const std::string& tag : image->repo_tags) {
      report.push_back({{"Untagged", FamiliarReference(tag)}});
    }
  }
  if (absl::Status removed =
          runtime.images().Remove(by_tag ? as_reference->String() : image->id.String());
      !removed.ok()) {
    return ReplyError(responder, removed);
  }
  if (!untag_only) {
    report.push_back({{"Deleted", image->id.String()}});
    std::string noprune = request.Query("noprune");
    if (noprune != "1" && noprune != "true") {
      for (const std::string& parent : PruneUntaggedParents(image->id.String())) {
        report.push_back({{"Deleted", parent}});
      }
    }
  }
  responder.Json(200, report);
}

std::vector<std::string> Api::Impl::PruneUntaggedParents(const std::string& removed) {
  std::vector<std::string> deleted;
  std::set<std::string> in_use;
  for (const runtime::Container& c : runtime.ListContainers()) in_use.insert(c.image_id);
  for (std::string child = removed;;) {
    std::optional<std::string> parent = builder.BuiltOn(child);
    // The chain ends at the build's FROM image, which no step made: that one stays.
    if (!parent.has_value() || !builder.BuiltOn(*parent).has_value()) break;
    absl::StatusOr<images::ImageRecord> record = runtime.images().Find(*parent);
    if (!record.ok() || !record->repo_tags.empty() || in_use.count(*parent) > 0) break;
    bool other_child = false;
    for (const std::string& sibling : builder.BuiltFrom(*parent)) {
      if (sibling != child && runtime.images().Find(sibling).ok()) other_child = true;
    }
    if (other_child) break;
    if (absl::Status gone = runtime.images().Remove(*parent); !gone.ok()) {
      logger.Warn("docker: cannot remove intermediate image ", *parent, ": ", gone.message());
      break;
    }
    deleted.push_back(*parent);
    child = *parent;
  }
  return deleted;
}

void Api::Impl::PushImage(const std::string& name, const Request& request, Responder& responder) {
  std::string tag = request.Query("tag");
  if (tag.empty()) tag = "latest";
  std::string reference = absl::StrCat(name, ":", tag);
  absl::StatusOr<images::Reference> parsed = images::ParseReference(reference);
  if (!parsed.ok()) return ReplyError(responder, parsed.status());
  if (!runtime.images().Find(parsed->String()).ok()) {
    return responder.Error(404, absl::StrCat("An image does not exist locally with the tag: ",
                                             FamiliarReference(parsed->Name())));
  }
  if (!responder.StartStream(200, "application/json")) return;
  ProgressStream stream(responder);
  stream.Send({{"status", absl::StrCat("The push refers to repository [",
                                       FamiliarReference(parsed->Name()), "]")}});
  images::PushCallback progress = [&](const images::PushProgress& blob) {
    std::string id = ShortDigest(blob.digest);
    switch (blob.phase) {
      case images::PushProgress::Phase::kPreparing:
        return stream.Step("Preparing", id);
      case images::PushProgress::Phase::kExists:
        return stream.Step("Layer already exists", id);
      case images::PushProgress::Phase::kMounted:
        return stream.Step("Mounted from another repository", id);
      case images::PushProgress::Phase::kPushed:
        return stream.Step("Pushed", id);
      case images::PushProgress::Phase::kPushing:
        return stream.Bytes("Pushing", id, blob.done, blob.total);
    }
  };
  absl::StatusOr<images::PushResult> pushed =
      runtime.images().Push(parsed->String(), CredentialsOf(request), progress);
  if (!pushed.ok()) return stream.Fail(pushed.status());
  std::string digest = pushed->manifest_digest.String();
  stream.Send({{"status",
                absl::StrCat(pushed->tag, ": digest: ", digest, " size: ", pushed->manifest_size)},
               {"progressDetail", nlohmann::json::object()}});
  stream.Send(
      {{"progressDetail", nlohmann::json::object()},
       {"aux", {{"Tag", pushed->tag}, {"Digest", digest}, {"Size", pushed->manifest_size}}}});
  responder.EndStream();
}

void Api::Impl::ImageHistory(const std::string& name, Responder& responder) {
  absl::StatusOr<images::ImageRecord> image = runtime.images().Find(name);
  if (!image.ok()) return ReplyImageError(responder, name, image.status());
  nlohmann::json list = nlohmann::json::array();
  bool top = true;
  for (const runtime::HistoryEntry& entry : runtime.images().History(*image)) {
    absl::Time created;
    std::string error;
    int64_t seconds = absl::ParseTime(absl::RFC3339_full, entry.created, &created, &error)
                          ? absl::ToUnixSeconds(created)
                          : 0;
    list.push_back({{"Id", top ? image->id.String() : "<missing>"},
                    {"Created", seconds},
                    {"CreatedBy", entry.created_by},
                    {"Tags", top ? nlohmann::json(Familiar(image->repo_tags)) : nlohmann::json()},
                    {"Size", entry.size},
                    {"Comment", entry.comment}});
    top = false;
  }
  responder.Json(200, list);
}

void Api::Impl::SaveImages(const std::vector<std::string>& names, Responder& responder) {
  if (names.empty()) return responder.Error(400, "no image named to save");
  std::vector<images::ImageRecord> found;
  for (const std::string& name : names) {
    absl::StatusOr<images::ImageRecord> image = runtime.images().Find(name);
    if (!image.ok()) return ReplyImageError(responder, name, image.status());
    // A name that is a tag saves that tag only, as docker save does.
    if (absl::StatusOr<images::Reference> reference = images::ParseReference(name);
        reference.ok() && !absl::StartsWith(image->id.Hex(), name) &&
        std::find(image->repo_tags.begin(), image->repo_tags.end(), reference->String()) !=
            image->repo_tags.end()) {
      image->repo_tags = {reference->String()};
    }
    found.push_back(*image);
  }
  if (!responder.StartStream(200, "application/x-tar")) return;
  absl::Status exported = runtime.images().Export(found, [&](const char* data, size_t size) {
    return responder.WriteChunk(absl::string_view(data, size))
               ? absl::OkStatus()
               : absl::CancelledError("the client went away");
  });
  // Headers are gone: a failure can only cut the stream, which the CLI reports.
  if (!exported.ok()) {
    logger.Warn("docker save: ", exported.message());
    return;
  }
  responder.EndStream();
}

void Api::Impl::LoadImages(const Request& request, Responder& responder) {
  if (request.body_file.empty()) return responder.Error(400, "no archive was sent");
  absl::StatusOr<std::vector<images::ImageRecord>> loaded =
      runtime.images().Import(request.body_file);
  if (!loaded.ok()) return ReplyError(responder, loaded.status());
  if (!responder.StartStream(200, "application/json")) return;
  std::set<std::string> said;  // an image with several tags comes back once per tag
  for (const images::ImageRecord& image : *loaded) {
    std::vector<std::string> lines;
    for (const std::string& tag : image.repo_tags) {
      lines.push_back(absl::StrCat("Loaded image: ", FamiliarReference(tag), "\n"));
    }
    if (lines.empty()) lines.push_back(absl::StrCat("Loaded image ID: ", image.id.String(), "\n"));
    for (const std::string& line : lines) {
      if (!said.insert(line).second) continue;
      responder.WriteChunk(nlohmann::json({{"stream", line}}).dump() + "\r\n");
    }
  }
  responder.EndStream();
}

}  // namespace kapal::docker
