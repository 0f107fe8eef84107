#include "ctl/build_commands.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/files.h"
#include "base/unique_fd.h"

namespace kapal::ctl {

namespace {

// A Dockerfile given with -f from outside the context travels in the tar under this name.
constexpr char kOutsideDockerfile[] = ".kapal.Dockerfile";
constexpr size_t kChunkBytes = 1 << 20;

using BuildStream = grpc::ClientReaderWriter<kapal::v1::BuildInput, kapal::v1::BuildEvent>;

std::string CleanPattern(absl::string_view pattern) {
  std::vector<std::string> kept;
  for (absl::string_view part : absl::StrSplit(pattern, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    if (part == ".." && !kept.empty()) {
      kept.pop_back();
      continue;
    }
    kept.emplace_back(part);
  }
  return absl::StrJoin(kept, "/");
}

bool Matches(const std::string& pattern, const std::string& path) {
  if (absl::StrContains(pattern, "**")) {
    // "**" crosses directories: fnmatch without FNM_PATHNAME lets "*" do so.
    std::string loose = pattern;
    while (absl::StrContains(loose, "**")) loose.replace(loose.find("**"), 2, "*");
    return ::fnmatch(loose.c_str(), path.c_str(), 0) == 0;
  }
  return ::fnmatch(pattern.c_str(), path.c_str(), FNM_PATHNAME) == 0;
}

std::vector<std::string> ReadIgnoreFile(const std::string& directory) {
  std::vector<std::string> patterns;
  absl::StatusOr<std::string> text = base::ReadFile(directory + "/.dockerignore");
  if (!text.ok()) return patterns;
  for (absl::string_view line : absl::StrSplit(*text, '\n')) {
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || absl::StartsWith(line, "#")) continue;
    patterns.emplace_back(line);
  }
  return patterns;
}

struct ArchiveDeleter {
  void operator()(archive* a) const { archive_write_free(a); }
};
struct DiskDeleter {
  void operator()(archive* a) const { archive_read_free(a); }
};
struct EntryDeleter {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};

// The tar's bytes, gathered into large pieces for the stream.
struct ChunkSink {
  BuildStream* stream;
  std::string pending;
  bool broken = false;
  void Flush() {
    if (pending.empty() || broken) return;
    kapal::v1::BuildInput input;
    input.set_context(std::move(pending));
    pending.clear();
    if (!stream->Write(input)) broken = true;  // the server ended the call; Finish says why
  }
};

la_ssize_t WriteCallback(archive*, void* client, const void* buffer, size_t length) {
  auto* sink = static_cast<ChunkSink*>(client);
  sink->pending.append(static_cast<const char*>(buffer), length);
  if (sink->pending.size() >= kChunkBytes) sink->Flush();
  return static_cast<la_ssize_t>(length);
}

class ContextWriter {
 public:
  ContextWriter(std::string root, std::vector<std::string> patterns, std::string dockerfile,
                archive* out)
      : root_(std::move(root)),
        patterns_(std::move(patterns)),
        dockerfile_(std::move(dockerfile)),
        out_(out),
        disk_(archive_read_disk_new()) {
    archive_read_disk_set_standard_lookup(disk_.get());
    for (const std::string& pattern : patterns_) {
      if (absl::StartsWith(pattern, "!")) has_exceptions_ = true;
    }
  }

  absl::Status AddTree(const std::string& relative) {
    absl::StatusOr<std::vector<std::string>> names =
        base::ListDirectory(relative.empty() ? root_ : root_ + "/" + relative);
    if (!names.ok()) return names.status();
    for (const std::string& name : *names) {
      std::string child = relative.empty() ? name : relative + "/" + name;
      std::string path = root_ + "/" + child;
      struct stat st {};
      if (::lstat(path.c_str(), &st) != 0) return base::ErrnoStatus(errno, "lstat " + path);
      // The Dockerfile and .dockerignore go whatever .dockerignore says, as with docker build.
      bool ignored = child != dockerfile_ && child != ".dockerignore" && Ignored(patterns_, child);
      if (!ignored) {
        if (absl::Status added = AddEntry(child, path, st); !added.ok()) return added;
      }
      if (S_ISDIR(st.st_mode) && (!ignored || has_exceptions_)) {
        if (absl::Status added = AddTree(child); !added.ok()) return added;
      }
    }
    return absl::OkStatus();
  }

  absl::Status AddBytes(const std::string& name, const std::string& content) {
    std::unique_ptr<archive_entry, EntryDeleter> entry(archive_entry_new());
    archive_entry_set_pathname(entry.get(), name.c_str());
    archive_entry_set_filetype(entry.get(), AE_IFREG);
    archive_entry_set_perm(entry.get(), 0644);
    archive_entry_set_size(entry.get(), static_cast<la_int64_t>(content.size()));
    if (archive_write_header(out_, entry.get()) != ARCHIVE_OK ||
        archive_write_data(out_, content.data(), content.size()) < 0) {
      return absl::InternalError(absl::StrCat("context tar: ", archive_error_string(out_)));
    }
    return absl::OkStatus();
  }

 private:
  absl::Status AddEntry(const std::string& relative, const std::string& path,
                        const struct stat& st) {
    std::unique_ptr<archive_entry, EntryDeleter> entry(archive_entry_new());
    archive_entry_copy_sourcepath(entry.get(), path.c_str());
    if (archive_read_disk_entry_from_file(disk_.get(), entry.get(), -1, &st) != ARCHIVE_OK) {
      return absl::InternalError(
          absl::StrCat("read ", path, ": ", archive_error_string(disk_.get())));
    }
    archive_entry_copy_pathname(entry.get(), relative.c_str());
    if (archive_write_header(out_, entry.get()) != ARCHIVE_OK) {
      return absl::InternalError(
          absl::StrCat("context tar, ", relative, ": ", archive_error_string(out_)));
    }
    if (!S_ISREG(st.st_mode) || st.st_size == 0) return absl::OkStatus();
    base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return base::ErrnoStatus(errno, "open " + path);
    std::vector<char> buffer(256 * 1024);
    for (;;) {
      ssize_t n = ::read(fd.Get(), buffer.data(), buffer.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return base::ErrnoStatus(errno, "read " + path);
      if (n == 0) return absl::OkStatus();
      if (archive_write_data(out_, buffer.data(), static_cast<size_t>(n)) < 0) {
        return absl::InternalError(absl::StrCat("context tar: ", archive_error_string(out_)));
      }
    }
  }

  std::string root_;
  std::vector<std::string> patterns_;
  std::string dockerfile_;
  archive* out_;
  std::unique_ptr<archive, DiskDeleter> disk_;
  bool has_exceptions_ = false;
};

absl::StatusOr<std::string> RealPath(const std::string& path) {
  std::unique_ptr<char, decltype(&std::free)> resolved(::realpath(path.c_str(), nullptr),
                                                       &std::free);
  if (!resolved) return base::ErrnoStatus(errno, path);
  return std::string(resolved.get());
}

}  // namespace

bool Ignored(const std::vector<std::string>& patterns, const std::string& relative) {
  bool ignored = false;
  std::vector<std::string> parts = absl::StrSplit(relative, '/', absl::SkipEmpty());
  for (const std::string& raw : patterns) {
    absl::string_view text = raw;
    bool exception = absl::ConsumePrefix(&text, "!");
    std::string pattern = CleanPattern(absl::StripAsciiWhitespace(text));
    if (pattern.empty()) continue;
    // The path itself, or a directory it is in.
    std::string prefix;
    bool matched = false;
    for (const std::string& part : parts) {
      prefix = prefix.empty() ? part : prefix + "/" + part;
      if (Matches(pattern, prefix)) {
        matched = true;
        break;
      }
    }
    if (matched) ignored = !exception;
  }
  return ignored;
}

absl::Status RunBuild(CriClient& client, const BuildCommand& command, std::ostream& out,
                      int* exit_code) {
  absl::StatusOr<std::string> root = RealPath(command.directory);
  if (!root.ok()) {
    return absl::NotFoundError(
        absl::StrCat("unable to prepare context: ", root.status().message()));
  }
  kapal::v1::BuildInput first;
  kapal::v1::BuildOptions& options = *first.mutable_options();
  std::string outside_dockerfile;
  std::string dockerfile_path =
      command.dockerfile.empty() ? *root + "/Dockerfile" : command.dockerfile;
  absl::StatusOr<std::string> dockerfile = RealPath(dockerfile_path);
  if (!dockerfile.ok()) {
    return absl::NotFoundError(
        absl::StrCat("cannot find the Dockerfile: ", dockerfile.status().message()));
  }
  if (absl::StartsWith(*dockerfile, *root + "/")) {
    options.set_dockerfile(dockerfile->substr(root->size() + 1));
  } else {
    absl::StatusOr<std::string> text = base::ReadFile(*dockerfile);
    if (!text.ok()) return text.status();
    outside_dockerfile = *text;
    options.set_dockerfile(kOutsideDockerfile);
  }
  for (const std::string& tag : command.tags) options.add_tags(tag);
  for (const std::string& arg : command.build_args) {
    std::pair<std::string, std::string> kv = absl::StrSplit(arg, absl::MaxSplits('=', 1));
    if (arg.find('=') == std::string::npos) {
      const char* value = std::getenv(arg.c_str());
      if (value == nullptr) continue;  // as docker build: unset means not given
      kv.second = value;
    }
    (*options.mutable_build_args())[kv.first] = kv.second;
  }
  for (const std::string& label : command.labels) {
    std::pair<std::string, std::string> kv = absl::StrSplit(label, absl::MaxSplits('=', 1));
    (*options.mutable_labels())[kv.first] = kv.second;
  }
  options.set_target(command.target);
  options.set_no_cache(command.no_cache);
  options.set_pull(command.pull);
  options.set_network_mode(command.network);

  auto context = client.LongContext();
  std::unique_ptr<BuildStream> stream = client.KapalBuilds().Build(context.get());
  ChunkSink sink{stream.get(), {}, !stream->Write(first)};
  {
    std::unique_ptr<archive, ArchiveDeleter> tar(archive_write_new());
    archive_write_set_format_pax_restricted(tar.get());
    if (archive_write_open2(tar.get(), &sink, nullptr, WriteCallback, nullptr, nullptr) !=
        ARCHIVE_OK) {
      return absl::InternalError(absl::StrCat("context tar: ", archive_error_string(tar.get())));
    }
    ContextWriter writer(*root, ReadIgnoreFile(*root), options.dockerfile(), tar.get());
    absl::Status written = writer.AddTree("");
    if (written.ok() && !outside_dockerfile.empty()) {
      written = writer.AddBytes(kOutsideDockerfile, outside_dockerfile);
    }
    if (!written.ok()) {
      context->TryCancel();
      return written;
    }
    archive_write_close(tar.get());
  }
  sink.Flush();
  stream->WritesDone();
  kapal::v1::BuildEvent event;
  std::string image_id;
  while (stream->Read(&event)) {
    if (event.has_image_id()) {
      image_id = event.image_id();
    } else if (!command.quiet) {
      out << event.output() << std::flush;
    }
  }
  grpc::Status status = stream->Finish();
  if (!status.ok()) {
    // A failing RUN's exit code becomes kapalctl's, as with docker build.
    const auto& trailers = context->GetServerTrailingMetadata();
    if (auto found = trailers.find("kapal-run-exit-code"); found != trailers.end()) {
      int code = 0;
      if (absl::SimpleAtoi(absl::string_view(found->second.data(), found->second.size()), &code) &&
          code > 0 && code < 256) {
        *exit_code = code;
      }
    }
    return RpcError("Build", status);
  }
  if (command.quiet) out << image_id << "\n";
  return absl::OkStatus();
}

}  // namespace kapal::ctl
