#include "images/archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>

#include <map>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/unique_fd.h"
#include "images/manifest.h"
#include "nlohmann/json.hpp"

namespace kapal::images {

namespace {

using nlohmann::json;

constexpr size_t kMaxMetadataBytes = 8 * 1024 * 1024;
constexpr char kImageNameAnnotation[] = "io.containerd.image.name";
constexpr char kRefNameAnnotation[] = "org.opencontainers.image.ref.name";

struct ArchiveReader {
  archive* handle = archive_read_new();
  ~ArchiveReader() { archive_read_free(handle); }
};

std::string CleanEntryPath(std::string path) {
  while (absl::StartsWith(path, "./")) path = path.substr(2);
  while (absl::StartsWith(path, "/")) path = path.substr(1);
  return path;
}

// A repo tag to record for NAME, or "" when NAME is not a full reference (OCI's ref.name is
// often only a tag such as "1.0", which names nothing by itself).
std::string TagFor(const std::string& name) {
  if (name.empty() || (!absl::StrContains(name, "/") && !absl::StrContains(name, ":"))) return "";
  absl::StatusOr<Reference> reference = ParseReference(name);
  if (!reference.ok() || reference->tag.empty()) return "";
  return absl::StrCat(reference->Name(), ":", reference->tag);
}

}  // namespace

absl::StatusOr<std::vector<ImageRecord>> ImportArchive(const std::string& path,
                                                       ContentStore& content, Puller& puller) {
  ArchiveReader reader;
  archive_read_support_format_tar(reader.handle);
  archive_read_support_filter_all(reader.handle);
  if (archive_read_open_filename(reader.handle, path.c_str(), 1 << 20) != ARCHIVE_OK) {
    return absl::InvalidArgumentError(
        absl::StrCat("import: ", archive_error_string(reader.handle)));
  }
  std::map<std::string, std::string> metadata;  // index.json, manifest.json, oci-layout
  std::map<std::string, Digest> stored;         // archive path → digest of what it held
  archive_entry* entry = nullptr;
  for (;;) {
    int r = archive_read_next_header(reader.handle, &entry);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
      return absl::InvalidArgumentError(
          absl::StrCat("import: ", archive_error_string(reader.handle)));
    }
    if (archive_entry_filetype(entry) != AE_IFREG) continue;
    std::string name = CleanEntryPath(archive_entry_pathname(entry));
    if (name == "index.json" || name == "manifest.json" || name == "oci-layout") {
      if (archive_entry_size(entry) > static_cast<la_int64_t>(kMaxMetadataBytes)) {
        return absl::InvalidArgumentError(absl::StrCat("import: ", name, " is too large"));
      }
      std::string text(static_cast<size_t>(archive_entry_size(entry)), '\0');
      if (archive_read_data(reader.handle, text.data(), text.size()) !=
          static_cast<la_ssize_t>(text.size())) {
        return absl::InvalidArgumentError(absl::StrCat("import: cannot read ", name));
      }
      metadata[name] = std::move(text);
      continue;
    }
    // blobs/ALGORITHM/HEX is checked against its name; anything else (docker save's configs and
    // layer tars) is stored under the digest of its content.
    absl::StatusOr<std::unique_ptr<BlobWriter>> writer = absl::UnknownError("");
    if (absl::StartsWith(name, "blobs/")) {
      std::string rest = name.substr(6);
      size_t slash = rest.find('/');
      absl::StatusOr<Digest> digest =
          slash == std::string::npos
              ? absl::InvalidArgumentError("no algorithm")
              : Digest::Parse(rest.substr(0, slash) + ":" + rest.substr(slash + 1));
      if (!digest.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("import: ", name, " is not blobs/ALGORITHM/HEX"));
      }
      if (content.Has(*digest)) {
        stored.emplace(name, *digest);
        continue;
      }
      writer = content.Writer(*digest, archive_entry_size(entry));
    } else {
      writer = content.WriterForUnknown();
    }
    if (!writer.ok()) return writer.status();
    const void* block = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    for (;;) {
      int data = archive_read_data_block(reader.handle, &block, &size, &offset);
      if (data == ARCHIVE_EOF) break;
      if (data != ARCHIVE_OK) {
        return absl::InvalidArgumentError(
            absl::StrCat("import: ", name, ": ", archive_error_string(reader.handle)));
      }
      if (absl::Status written = (*writer)->Write(static_cast<const char*>(block), size);
          !written.ok()) {
        return written;
      }
    }
    absl::StatusOr<int64_t> committed = (*writer)->Commit();
    if (!committed.ok()) {
      return absl::Status(committed.status().code(),
                          absl::StrCat("import: ", name, ": ", committed.status().message()));
    }
    stored.emplace(name, (*writer)->BlobDigest());
  }

  std::vector<ImageRecord> imported;
  if (metadata.contains("index.json")) {
    json index = json::parse(metadata["index.json"], nullptr, false);
    if (index.is_discarded() || !index.contains("manifests") || !index["manifests"].is_array()) {
      return absl::InvalidArgumentError("import: index.json has no manifests");
    }
    for (const json& entry_json : index["manifests"]) {
      absl::StatusOr<Digest> digest = Digest::Parse(entry_json.value("digest", ""));
      if (!digest.ok()) return absl::InvalidArgumentError("import: index.json: bad digest");
      std::string media_type = entry_json.value("mediaType", "");
      json annotations = entry_json.value("annotations", json::object());
      std::string tag = TagFor(annotations.value(kImageNameAnnotation, ""));
      if (tag.empty()) tag = TagFor(annotations.value(kRefNameAnnotation, ""));
      Digest manifest_digest = *digest;
      std::vector<Digest> extra;
      absl::StatusOr<std::string> body = content.ReadAll(manifest_digest);
      if (!body.ok())
        return absl::NotFoundError(
            absl::StrCat("import: ", digest->String(), " is not in the archive"));
      if (IsIndex(media_type, *body)) {
        absl::StatusOr<ImageIndex> nested = ParseIndex(*body);
        if (!nested.ok()) return nested.status();
        absl::StatusOr<Descriptor> chosen = SelectPlatform(*nested, HostPlatform());
        if (!chosen.ok()) return chosen.status();
        extra.push_back(manifest_digest);
        manifest_digest = chosen->digest;
        media_type = chosen->media_type;
      }
      std::vector<std::string> tags;
      if (!tag.empty()) tags.push_back(tag);
      std::vector<std::string> digests;
      if (!tag.empty()) {
        digests.push_back(absl::StrCat(tag.substr(0, tag.rfind(':')), "@", digest->String()));
      }
      absl::StatusOr<ImageRecord> image = puller.UnpackAndRecord(
          manifest_digest, media_type.empty() ? media_type::kOciManifest : media_type, tags,
          digests, extra);
      if (!image.ok()) return image.status();
      imported.push_back(*image);
    }
    return imported;
  }
  if (metadata.contains("manifest.json")) {
    json manifests = json::parse(metadata["manifest.json"], nullptr, false);
    if (manifests.is_discarded() || !manifests.is_array()) {
      return absl::InvalidArgumentError("import: manifest.json is not a list");
    }
    for (const json& item : manifests) {
      std::string config_path = CleanEntryPath(item.value("Config", ""));
      if (!stored.contains(config_path)) {
        return absl::InvalidArgumentError(
            absl::StrCat("import: config ", config_path, " is not in the archive"));
      }
      const Digest& config_digest = stored.at(config_path);
      absl::StatusOr<int64_t> config_size = content.SizeOf(config_digest);
      if (!config_size.ok()) return config_size.status();
      // docker save's layers are plain tars: each one's digest is also its diff id.
      json layers = json::array();
      for (const json& layer : item.value("Layers", json::array())) {
        std::string layer_path = CleanEntryPath(layer.get<std::string>());
        if (!stored.contains(layer_path)) {
          return absl::InvalidArgumentError(
              absl::StrCat("import: layer ", layer_path, " is not in the archive"));
        }
        const Digest& layer_digest = stored.at(layer_path);
        layers.push_back({{"mediaType", "application/vnd.docker.image.rootfs.diff.tar"},
                          {"digest", layer_digest.String()},
                          {"size", *content.SizeOf(layer_digest)}});
      }
      json manifest = {{"schemaVersion", 2},
                       {"mediaType", media_type::kDockerManifest},
                       {"config",
                        {{"mediaType", "application/vnd.docker.container.image.v1+json"},
                         {"digest", config_digest.String()},
                         {"size", *config_size}}},
                       {"layers", layers}};
      std::string body = manifest.dump();
      Digest manifest_digest = Digest::Sha256Of(body);
      if (absl::StatusOr<int64_t> written =
              content.IngestBytes(manifest_digest, body, media_type::kDockerManifest);
          !written.ok()) {
        return written.status();
      }
      std::vector<std::string> tags;
      for (const json& tag : item.value("RepoTags", json::array())) {
        if (std::string normalized = TagFor(tag.get<std::string>()); !normalized.empty()) {
          tags.push_back(normalized);
        }
      }
      absl::StatusOr<ImageRecord> image =
          puller.UnpackAndRecord(manifest_digest, media_type::kDockerManifest, tags, {}, {});
      if (!image.ok()) return image.status();
      imported.push_back(*image);
    }
    return imported;
  }
  return absl::InvalidArgumentError(
      "import: neither an OCI image layout (index.json) nor a docker save archive (manifest.json)");
}

namespace {

struct ArchiveWriter {
  archive* handle = archive_write_new();
  ~ArchiveWriter() { archive_write_free(handle); }
};

struct SinkState {
  const std::function<absl::Status(const char*, size_t)>* sink;
  absl::Status status;
};

la_ssize_t WriteToSink(archive*, void* client, const void* buffer, size_t length) {
  auto* state = static_cast<SinkState*>(client);
  state->status = (*state->sink)(static_cast<const char*>(buffer), length);
  return state->status.ok() ? static_cast<la_ssize_t>(length) : -1;
}

absl::Status AddFile(archive* a, SinkState& state, const std::string& name, int64_t size,
                     const std::function<absl::Status(archive*)>& write_data) {
  archive_entry* entry = archive_entry_new();
  archive_entry_set_pathname(entry, name.c_str());
  archive_entry_set_filetype(entry, AE_IFREG);
  archive_entry_set_perm(entry, 0644);
  archive_entry_set_size(entry, size);
  int r = archive_write_header(a, entry);
  archive_entry_free(entry);
  if (r != ARCHIVE_OK) {
    return state.status.ok() ? absl::InternalError(archive_error_string(a)) : state.status;
  }
  return write_data(a);
}

}  // namespace

absl::Status ExportArchive(const std::vector<ImageRecord>& images, ContentStore& content,
                           const std::function<absl::Status(const char*, size_t)>& sink) {
  std::vector<Digest> blobs;
  std::set<std::string> seen;
  auto add_blob = [&](const Digest& digest) {
    if (seen.insert(digest.String()).second) blobs.push_back(digest);
  };
  json manifests = json::array();
  json docker_manifest = json::array();  // manifest.json: what `docker load` reads
  for (const ImageRecord& image : images) {
    absl::StatusOr<std::string> manifest_json = content.ReadAll(image.manifest_digest);
    if (!manifest_json.ok()) return manifest_json.status();
    absl::StatusOr<ImageManifest> manifest = ParseManifest(*manifest_json);
    if (!manifest.ok()) return manifest.status();
    add_blob(image.manifest_digest);
    add_blob(manifest->config.digest);
    json layers = json::array();
    for (const Descriptor& layer : manifest->layers) {
      add_blob(layer.digest);
      layers.push_back(absl::StrCat("blobs/", layer.digest.Algorithm(), "/", layer.digest.Hex()));
    }
    json descriptor = {
        {"mediaType", image.media_type.empty() ? media_type::kOciManifest : image.media_type},
        {"digest", image.manifest_digest.String()},
        {"size", manifest_json->size()}};
    // One index entry per tag (an image may have several), as docker save writes them.
    for (const std::string& tag : image.repo_tags) {
      json named = descriptor;
      named["annotations"] = {{kImageNameAnnotation, tag},
                              {kRefNameAnnotation, tag.substr(tag.rfind(':') + 1)}};
      manifests.push_back(named);
    }
    if (image.repo_tags.empty()) manifests.push_back(descriptor);
    docker_manifest.push_back(
        {{"Config", absl::StrCat("blobs/", manifest->config.digest.Algorithm(), "/",
                                 manifest->config.digest.Hex())},
         {"RepoTags", image.repo_tags.empty() ? json() : json(image.repo_tags)},
         {"Layers", layers}});
  }
  json index = {
      {"schemaVersion", 2}, {"mediaType", media_type::kOciIndex}, {"manifests", manifests}};
  std::string index_json = index.dump();
  std::string manifest_list_json = docker_manifest.dump();
  std::string layout = R"({"imageLayoutVersion":"1.0.0"})";

  ArchiveWriter writer;
  archive* a = writer.handle;
  archive_write_set_format_pax_restricted(a);
  archive_write_set_bytes_in_last_block(a, 1);
  SinkState state{&sink, absl::OkStatus()};
  if (archive_write_open2(a, &state, nullptr, WriteToSink, nullptr, nullptr) != ARCHIVE_OK) {
    return absl::InternalError(archive_error_string(a));
  }
  auto write_string = [&](const std::string& text) {
    return [&text](archive* out) -> absl::Status {
      if (archive_write_data(out, text.data(), text.size()) < 0)
        return absl::InternalError(archive_error_string(out));
      return absl::OkStatus();
    };
  };
  if (absl::Status added = AddFile(a, state, "oci-layout", static_cast<int64_t>(layout.size()),
                                   write_string(layout));
      !added.ok()) {
    return added;
  }
  if (absl::Status added = AddFile(a, state, "index.json", static_cast<int64_t>(index_json.size()),
                                   write_string(index_json));
      !added.ok()) {
    return added;
  }
  if (absl::Status added =
          AddFile(a, state, "manifest.json", static_cast<int64_t>(manifest_list_json.size()),
                  write_string(manifest_list_json));
      !added.ok()) {
    return added;
  }
  for (const Digest& blob : blobs) {
    absl::StatusOr<int64_t> size = content.SizeOf(blob);
    if (!size.ok()) return size.status();
    absl::Status added =
        AddFile(a, state, absl::StrCat("blobs/", blob.Algorithm(), "/", blob.Hex()), *size,
                [&](archive* out) -> absl::Status {
                  base::UniqueFd fd(::open(content.PathOf(blob).c_str(), O_RDONLY | O_CLOEXEC));
                  if (!fd)
                    return absl::NotFoundError(absl::StrCat("blob ", blob.String(), " is missing"));
                  std::vector<char> buffer(1 << 20);
                  for (;;) {
                    ssize_t n = ::read(fd.Get(), buffer.data(), buffer.size());
                    if (n < 0)
                      return absl::InternalError(absl::StrCat("read blob ", blob.String()));
                    if (n == 0) break;
                    if (archive_write_data(out, buffer.data(), static_cast<size_t>(n)) < 0) {
                      return state.status.ok() ? absl::InternalError(archive_error_string(out))
                                               : state.status;
                    }
                  }
                  return absl::OkStatus();
                });
    if (!added.ok()) return added;
  }
  if (archive_write_close(a) != ARCHIVE_OK) {
    return state.status.ok() ? absl::InternalError(archive_error_string(a)) : state.status;
  }
  return state.status;
}

}  // namespace kapal::images
