#include "ctl/container_commands.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "base/unique_fd.h"

namespace kapal::ctl {

namespace {

struct ReadDeleter {
  void operator()(archive* a) const { archive_read_free(a); }
};
struct WriteDeleter {
  void operator()(archive* a) const { archive_write_free(a); }
};

// "CONTAINER:PATH" split; nullopt for a local path.
std::optional<std::pair<std::string, std::string>> ContainerPath(const std::string& text) {
  size_t colon = text.find(':');
  if (colon == std::string::npos || colon == 0 || text.find('/') < colon) return std::nullopt;
  return std::make_pair(text.substr(0, colon), text.substr(colon + 1));
}

// Streams CopyFrom's tar to SINK (each chunk); the call's status as an error.
absl::Status ReadCopy(CriClient& client, const std::string& id, const std::string& path,
                      const std::function<absl::Status(const std::string&)>& sink) {
  kapal::v1::CopyFromRequest request;
  request.set_container_id(id);
  request.set_path(path);
  auto context = client.LongContext();
  auto reader = client.KapalContainers().CopyFrom(context.get(), request);
  kapal::v1::ArchiveChunk chunk;
  absl::Status failed;
  while (reader->Read(&chunk)) {
    if (!failed.ok()) continue;
    failed = sink(chunk.data());
    if (!failed.ok()) context->TryCancel();
  }
  grpc::Status status = reader->Finish();
  if (!failed.ok()) return failed;
  if (!status.ok()) return RpcError(path.empty() ? "Export" : "CopyFrom", status);
  return absl::OkStatus();
}

// The working directory while it lives, back to the previous one after.
class WorkingDirectory {
 public:
  static absl::StatusOr<std::unique_ptr<WorkingDirectory>> Enter(const std::string& directory) {
    base::UniqueFd previous(::open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!previous) return base::ErrnoStatus(errno, "open the working directory");
    if (::chdir(directory.c_str()) != 0) return base::ErrnoStatus(errno, "chdir " + directory);
    return std::unique_ptr<WorkingDirectory>(new WorkingDirectory(std::move(previous)));
  }
  ~WorkingDirectory() { (void)::fchdir(previous_.Get()); }

 private:
  explicit WorkingDirectory(base::UniqueFd previous) : previous_(std::move(previous)) {}
  base::UniqueFd previous_;
};

// The tar in TAR_FILE extracted into local DIRECTORY: no entry leaves it (libarchive's secure
// checks refuse absolute names, `..` and paths through symlinks, so the names stay relative to
// DIRECTORY, entered for the extraction).
absl::Status ExtractLocally(const std::string& tar_file, const std::string& directory) {
  std::unique_ptr<archive, ReadDeleter> in(archive_read_new());
  archive_read_support_format_tar(in.get());
  if (archive_read_open_filename(in.get(), tar_file.c_str(), 1 << 16) != ARCHIVE_OK) {
    return absl::DataLossError(
        absl::StrCat("the copy is not a tar: ", archive_error_string(in.get())));
  }
  absl::StatusOr<std::unique_ptr<WorkingDirectory>> inside = WorkingDirectory::Enter(directory);
  if (!inside.ok()) return inside.status();
  std::unique_ptr<archive, WriteDeleter> disk(archive_write_disk_new());
  archive_write_disk_set_options(
      disk.get(), ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
                      ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS |
                      (::geteuid() == 0 ? ARCHIVE_EXTRACT_OWNER : 0));
  archive_entry* entry = nullptr;
  for (;;) {
    int next = archive_read_next_header(in.get(), &entry);
    if (next == ARCHIVE_EOF) break;
    if (next != ARCHIVE_OK) {
      return absl::DataLossError(
          absl::StrCat("the copy is a damaged tar: ", archive_error_string(in.get())));
    }
    if (archive_write_header(disk.get(), entry) != ARCHIVE_OK) {
      return absl::InvalidArgumentError(absl::StrCat("cannot write ", archive_entry_pathname(entry),
                                                     ": ", archive_error_string(disk.get())));
    }
    const void* block = nullptr;
    size_t size = 0;
    la_int64_t offset = 0;
    while (archive_read_data_block(in.get(), &block, &size, &offset) == ARCHIVE_OK) {
      archive_write_data_block(disk.get(), block, size, offset);
    }
    archive_write_finish_entry(disk.get());
  }
  return absl::OkStatus();
}

struct UploadState {
  grpc::ClientWriter<kapal::v1::CopyToInput>* writer;
  bool broken = false;
};

la_ssize_t Upload(archive*, void* client, const void* buffer, size_t length) {
  auto* state = static_cast<UploadState*>(client);
  kapal::v1::CopyToInput input;
  input.set_data(buffer, length);
  if (!state->writer->Write(input)) {
    state->broken = true;
    return -1;
  }
  return static_cast<la_ssize_t>(length);
}

// Local PATH (a file or a directory and what it holds) as a tar whose top entry is PATH's last
// part, written into the call.
absl::Status TarLocalPath(const std::string& path, UploadState& state) {
  std::string clean = path;
  while (clean.size() > 1 && clean.back() == '/') clean.pop_back();
  size_t slash = clean.rfind('/');
  std::string parent = slash == std::string::npos ? "" : clean.substr(0, slash + 1);
  std::unique_ptr<archive, ReadDeleter> disk(archive_read_disk_new());
  archive_read_disk_set_standard_lookup(disk.get());
  archive_read_disk_set_symlink_physical(disk.get());
  if (archive_read_disk_open(disk.get(), clean.c_str()) != ARCHIVE_OK) {
    return absl::NotFoundError(absl::StrCat(path, ": ", archive_error_string(disk.get())));
  }
  std::unique_ptr<archive, WriteDeleter> out(archive_write_new());
  archive_write_set_format_pax_restricted(out.get());
  archive_write_open2(out.get(), &state, nullptr, Upload, nullptr, nullptr);
  std::vector<char> buffer(1 << 16);
  for (;;) {
    archive_entry* entry = archive_entry_new();
    int r = archive_read_next_header2(disk.get(), entry);
    if (r != ARCHIVE_OK) {
      archive_entry_free(entry);
      if (r == ARCHIVE_EOF) break;
      return absl::InternalError(absl::StrCat(path, ": ", archive_error_string(disk.get())));
    }
    archive_read_disk_descend(disk.get());
    std::string name = archive_entry_pathname(entry);
    std::string source = archive_entry_sourcepath(entry) ? archive_entry_sourcepath(entry) : name;
    if (!parent.empty() && name.compare(0, parent.size(), parent) == 0) {
      archive_entry_set_pathname(entry, name.substr(parent.size()).c_str());
    }
    if (archive_write_header(out.get(), entry) != ARCHIVE_OK) {
      archive_entry_free(entry);
      if (state.broken) return absl::UnavailableError("kapald ended the copy");
      return absl::InternalError(archive_error_string(out.get()));
    }
    if (archive_entry_filetype(entry) == AE_IFREG && archive_entry_size(entry) > 0) {
      std::ifstream file(source, std::ios::binary);
      while (file.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) ||
             file.gcount() > 0) {
        archive_write_data(out.get(), buffer.data(), static_cast<size_t>(file.gcount()));
      }
    }
    archive_entry_free(entry);
  }
  archive_write_close(out.get());
  if (state.broken) return absl::UnavailableError("kapald ended the copy");
  return absl::OkStatus();
}

}  // namespace

absl::Status RunPause(CriClient& client, const std::vector<std::string>& ids, bool pause,
                      std::ostream& out) {
  for (const std::string& id : ids) {
    kapal::v1::ContainerRequest request;
    request.set_container_id(id);
    kapal::v1::ContainerResponse response;
    auto context = client.NewContext();
    grpc::Status status = pause
                              ? client.KapalContainers().Pause(context.get(), request, &response)
                              : client.KapalContainers().Unpause(context.get(), request, &response);
    if (!status.ok()) return RpcError(pause ? "Pause" : "Unpause", status);
    out << id << "\n";
  }
  return absl::OkStatus();
}

absl::Status RunTop(CriClient& client, const std::string& id, std::ostream& out) {
  kapal::v1::ContainerRequest request;
  request.set_container_id(id);
  kapal::v1::TopResponse response;
  auto context = client.NewContext();
  grpc::Status status = client.KapalContainers().Top(context.get(), request, &response);
  if (!status.ok()) return RpcError("Top", status);
  out << "PID      CMD\n";
  for (int pid : response.pids()) {
    absl::StatusOr<std::string> cmdline = base::ReadFile(absl::StrCat("/proc/", pid, "/cmdline"));
    std::string command =
        cmdline.ok() ? absl::StrReplaceAll(*cmdline, {{std::string(1, '\0'), " "}}) : "?";
    while (!command.empty() && command.back() == ' ') command.pop_back();
    out << absl::StrCat(pid) << std::string(pid < 10000000 ? 9 - absl::StrCat(pid).size() : 1, ' ')
        << command << "\n";
  }
  return absl::OkStatus();
}

absl::Status RunCopy(CriClient& client, const std::string& source, const std::string& destination,
                     bool archive_owners, std::ostream& out) {
  std::optional<std::pair<std::string, std::string>> from = ContainerPath(source);
  std::optional<std::pair<std::string, std::string>> to = ContainerPath(destination);
  if (from.has_value() == to.has_value()) {
    return absl::InvalidArgumentError(
        "copying needs one CONTAINER:PATH and one local path or - (docker cp's rule)");
  }
  if (from.has_value()) {
    if (from->second.empty()) return absl::InvalidArgumentError("no path in " + source);
    if (destination == "-") {
      return ReadCopy(client, from->first, from->second, [](const std::string& data) {
        std::cout.write(data.data(), static_cast<std::streamsize>(data.size()));
        return std::cout ? absl::OkStatus() : absl::DataLossError("cannot write stdout");
      });
    }
    struct stat st {};
    if (::stat(destination.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
      return absl::InvalidArgumentError(absl::StrCat(
          destination, " is not an existing directory (kapalctl copies into one, or to -)"));
    }
    absl::StatusOr<base::TempDir> spool = base::TempDir::Create("kapalctl-copy");
    if (!spool.ok()) return spool.status();
    std::string tar_file = spool->Join("copy.tar");
    absl::Status copied;
    {
      std::ofstream tar(tar_file, std::ios::binary | std::ios::trunc);
      if (!tar) return absl::PermissionDeniedError("cannot write " + tar_file);
      copied = ReadCopy(client, from->first, from->second, [&tar](const std::string& data) {
        tar.write(data.data(), static_cast<std::streamsize>(data.size()));
        return tar ? absl::OkStatus() : absl::DataLossError("cannot write the copy");
      });
    }
    if (copied.ok()) copied = ExtractLocally(tar_file, destination);
    return copied;
  }
  kapal::v1::ContainerResponse response;
  auto context = client.LongContext();
  auto writer = client.KapalContainers().CopyTo(context.get(), &response);
  kapal::v1::CopyToInput first;
  first.mutable_target()->set_container_id(to->first);
  first.mutable_target()->set_directory(to->second.empty() ? "/" : to->second);
  first.mutable_target()->set_owner_from_container(archive_owners);
  writer->Write(first);
  UploadState state{writer.get()};
  absl::Status sent;
  if (source == "-") {
    std::vector<char> buffer(1 << 16);
    while (std::cin.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) ||
           std::cin.gcount() > 0) {
      kapal::v1::CopyToInput input;
      input.set_data(buffer.data(), static_cast<size_t>(std::cin.gcount()));
      if (!writer->Write(input)) break;
    }
  } else {
    sent = TarLocalPath(source, state);
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) return RpcError("CopyTo", status);
  if (!sent.ok()) return sent;
  (void)out;
  return absl::OkStatus();
}

absl::Status RunExportContainer(CriClient& client, const std::string& id, const std::string& file,
                                std::ostream& out) {
  if (file == "-") {
    return ReadCopy(client, id, "", [](const std::string& data) {
      std::cout.write(data.data(), static_cast<std::streamsize>(data.size()));
      return std::cout ? absl::OkStatus() : absl::DataLossError("cannot write stdout");
    });
  }
  // Written next to its final name and renamed when complete.
  std::string temp = file + ".partial";
  absl::Status exported;
  {
    std::ofstream tar(temp, std::ios::binary | std::ios::trunc);
    if (!tar) return absl::PermissionDeniedError("cannot write " + temp);
    exported = ReadCopy(client, id, "", [&tar](const std::string& data) {
      tar.write(data.data(), static_cast<std::streamsize>(data.size()));
      return tar ? absl::OkStatus() : absl::DataLossError("cannot write " + std::string("the tar"));
    });
  }
  if (!exported.ok()) {
    std::remove(temp.c_str());
    return exported;
  }
  if (std::rename(temp.c_str(), file.c_str()) != 0) {
    return absl::PermissionDeniedError(absl::StrCat("cannot rename ", temp, " to ", file));
  }
  out << "Exported container " << id << " to " << file << "\n";
  return absl::OkStatus();
}

absl::Status RunCommit(CriClient& client, const std::string& id, const std::string& reference,
                       const std::string& message, const std::string& author,
                       const std::vector<std::string>& changes, bool pause, std::ostream& out) {
  kapal::v1::CommitRequest request;
  request.set_container_id(id);
  request.set_reference(reference);
  request.set_comment(message);
  request.set_author(author);
  for (const std::string& change : changes) request.add_changes(change);
  request.set_no_pause(!pause);
  kapal::v1::CommitResponse response;
  auto context = client.LongContext();
  grpc::Status status = client.KapalBuilds().Commit(context.get(), request, &response);
  if (!status.ok()) return RpcError("Commit", status);
  out << response.image_id() << "\n";
  return absl::OkStatus();
}

absl::Status RunExecWithExtras(CriClient& client, const std::string& id,
                               const std::vector<std::string>& cmd, const ExecExtras& extras,
                               int64_t timeout_seconds, std::ostream& out, std::ostream& err,
                               int* exit_code) {
  kapal::v1::ExecRequest request;
  request.set_container_id(id);
  for (const std::string& word : cmd) request.add_cmd(word);
  for (const std::string& item : extras.env) request.add_env(item);
  request.set_working_dir(extras.working_dir);
  request.set_user(extras.user);
  request.set_privileged(extras.privileged);
  request.set_timeout_seconds(timeout_seconds);
  kapal::v1::ExecResponse response;
  auto context = client.LongContext();
  grpc::Status status = client.KapalContainers().Exec(context.get(), request, &response);
  if (!status.ok()) return RpcError("Exec", status);
  out << response.stdout();
  err << response.stderr();
  *exit_code = response.exit_code();
  return absl::OkStatus();
}

absl::Status RunImportRootfs(CriClient& client, const std::string& file,
                             const std::string& reference, const std::string& message,
                             const std::vector<std::string>& changes, std::ostream& out) {
  std::ifstream from_file;
  if (file != "-") {
    from_file.open(file, std::ios::binary);
    if (!from_file) return absl::NotFoundError("cannot read " + file);
  }
  std::istream& in = file == "-" ? std::cin : from_file;
  kapal::v1::CommitResponse response;
  auto context = client.LongContext();
  auto writer = client.KapalBuilds().Import(context.get(), &response);
  kapal::v1::RootfsImportInput first;
  first.mutable_options()->set_reference(reference);
  first.mutable_options()->set_comment(message);
  for (const std::string& change : changes) first.mutable_options()->add_changes(change);
  bool open = writer->Write(first);
  std::vector<char> buffer(1 << 20);
  while (open &&
         (in.read(buffer.data(), static_cast<std::streamsize>(buffer.size())) || in.gcount() > 0)) {
    kapal::v1::RootfsImportInput piece;
    piece.set_data(buffer.data(), static_cast<size_t>(in.gcount()));
    open = writer->Write(piece);
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  if (!status.ok()) return RpcError("Import", status);
  out << response.image_id() << "\n";
  return absl::OkStatus();
}

}  // namespace kapal::ctl
