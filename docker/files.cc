// Docker's cp (HEAD/GET/PUT /containers/{id}/archive), export and import: the files work is the
// core's (runtime::ContainerFiles) and the builder's (Import); this file speaks Docker's HTTP.

#include <sys/stat.h>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "docker/api_impl.h"

namespace kapal::docker {

namespace {

// st_mode as Go's os.FileMode, which the docker CLI decodes (type bits at the top).
uint32_t GoFileMode(mode_t mode) {
  uint32_t go = mode & 0777;
  if (mode & S_ISUID) go |= 1u << 23;
  if (mode & S_ISGID) go |= 1u << 22;
  if (mode & S_ISVTX) go |= 1u << 20;
  switch (mode & S_IFMT) {
    case S_IFDIR:
      go |= 1u << 31;
      break;
    case S_IFLNK:
      go |= 1u << 27;
      break;
    case S_IFBLK:
      go |= 1u << 26;
      break;
    case S_IFCHR:
      go |= (1u << 26) | (1u << 21);
      break;
    case S_IFIFO:
      go |= 1u << 25;
      break;
    case S_IFSOCK:
      go |= 1u << 24;
      break;
    default:
      break;
  }
  return go;
}

// The X-Docker-Container-Path-Stat header: the path's stat as base64 JSON.
std::string PathStatHeader(const runtime::ContainerPathStat& stat) {
  nlohmann::json json = {{"name", stat.name},
                         {"size", stat.size},
                         {"mode", GoFileMode(stat.mode)},
                         {"mtime", DockerTime(stat.mtime_nanos)},
                         {"linkTarget", stat.link_target}};
  return absl::Base64Escape(json.dump());
}

constexpr char kPathStatHeader[] = "X-Docker-Container-Path-Stat";

// A tar written straight into the answer's chunks; CANCELLED once the client is gone.
images::ArchiveSink ChunksTo(Responder& responder) {
  return [&responder](const void* data, size_t size) {
    if (!responder.WriteChunk(absl::string_view(static_cast<const char*>(data), size))) {
      return absl::CancelledError("the client went away");
    }
    return absl::OkStatus();
  };
}

}  // namespace

void Api::Impl::ContainerArchive(const std::string& ref, const Request& request,
                                 Responder& responder) {
  bool head = request.method == "HEAD";
  // A HEAD answer carries no body, its error neither (the client would read it as the next
  // answer).
  auto fail = [&](const absl::Status& status) {
    if (head) return responder.Empty(HttpCodeOf(status));
    ReplyError(responder, status);
  };
  absl::StatusOr<DockerContainer> found = FindContainer(ref);
  if (!found.ok()) return fail(found.status());
  std::string path = request.Query("path");
  if (path.empty()) return fail(absl::InvalidArgumentError("path is required"));
  absl::StatusOr<runtime::ContainerFiles> files = runtime.FilesOf(found->container.id);
  if (!files.ok()) return fail(files.status());

  if (request.method == "PUT") {
    if (request.body_file.empty())
      return ReplyError(responder, absl::InvalidArgumentError("the archive is missing"));
    runtime::CopyInOptions copy_in;
    copy_in.no_overwrite_dir_non_dir = request.QueryFlag("noOverwriteDirNonDir");
    copy_in.owner_from_container = request.QueryFlag("copyUIDGID");
    if (absl::Status copied = files->Extract(path, request.body_file, copy_in); !copied.ok()) {
      return ReplyError(responder, copied);
    }
    return responder.Empty(200);
  }

  absl::StatusOr<runtime::ContainerPathStat> stat = files->Stat(path);
  if (!stat.ok()) return fail(stat.status());
  responder.AddHeader(kPathStatHeader, PathStatHeader(*stat));
  if (head) return responder.Empty(200);
  if (!responder.StartStream(200, "application/x-tar")) return;
  absl::Status archived = files->Archive(path, ChunksTo(responder));
  if (!archived.ok()) {
    // Too late for an error answer: the tar is cut short, which the client reports.
    logger.Warn("docker cp from ", found->name, ":", path, ": ", archived.message());
    return;
  }
  responder.EndStream();
}

void Api::Impl::ExportContainer(const std::string& ref, Responder& responder) {
  absl::StatusOr<DockerContainer> found = FindContainer(ref);
  if (!found.ok()) return ReplyError(responder, found.status());
  absl::StatusOr<runtime::ContainerFiles> files = runtime.FilesOf(found->container.id);
  if (!files.ok()) return ReplyError(responder, files.status());
  if (!responder.StartStream(200, "application/x-tar")) return;
  absl::Status exported = files->Export(ChunksTo(responder));
  if (!exported.ok()) {
    logger.Warn("docker export of ", found->name, ": ", exported.message());
    return;
  }
  responder.EndStream();
}

void Api::Impl::ImportImage(const Request& request, Responder& responder) {
  std::string source = request.Query("fromSrc");
  if (source != "-") {
    return ReplyError(responder,
                      absl::InvalidArgumentError(absl::StrCat(
                          "kapal imports only from the request body (fromSrc=-), not from ", source,
                          "; download it first: curl -L URL | docker import - NAME")));
  }
  if (request.body_file.empty()) {
    return ReplyError(responder, absl::InvalidArgumentError("the archive to import is missing"));
  }
  builder::ImportOptions import;
  import.tar_path = request.body_file;
  import.comment = request.Query("message");
  import.changes = request.QueryValues("changes");
  std::string repo = request.Query("repo");
  std::string tag = request.Query("tag");
  if (!repo.empty()) import.reference = tag.empty() ? repo : repo + ":" + tag;
  absl::StatusOr<std::string> id = builder.Import(import);
  if (!id.ok()) return ReplyError(responder, id.status());
  // The CLI prints the last status line: the new image's id.
  if (!responder.StartStream(200, "application/json")) return;
  responder.WriteChunk(nlohmann::json({{"status", *id}}).dump() + "\n");
  responder.EndStream();
}

}  // namespace kapal::docker
