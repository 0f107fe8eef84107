#include "cri/containers_service.h"

#include "cri/grpc_status.h"
#include "cri/upload_spool.h"

namespace kapal::cri {

grpc::Status KapalContainersService::Pause(grpc::ServerContext*,
                                           const kapal::v1::ContainerRequest* request,
                                           kapal::v1::ContainerResponse*) {
  return ToGrpcStatus(runtime_.PauseContainer(request->container_id()));
}

grpc::Status KapalContainersService::Unpause(grpc::ServerContext*,
                                             const kapal::v1::ContainerRequest* request,
                                             kapal::v1::ContainerResponse*) {
  return ToGrpcStatus(runtime_.ResumeContainer(request->container_id()));
}

grpc::Status KapalContainersService::Top(grpc::ServerContext*,
                                         const kapal::v1::ContainerRequest* request,
                                         kapal::v1::TopResponse* response) {
  absl::StatusOr<std::vector<int>> pids = runtime_.ContainerProcesses(request->container_id());
  if (!pids.ok()) return ToGrpcStatus(pids.status());
  for (int pid : *pids) response->add_pids(pid);
  return grpc::Status::OK;
}

grpc::Status KapalContainersService::CopyFrom(grpc::ServerContext* context,
                                              const kapal::v1::CopyFromRequest* request,
                                              grpc::ServerWriter<kapal::v1::ArchiveChunk>* writer) {
  absl::StatusOr<runtime::ContainerFiles> files = runtime_.FilesOf(request->container_id());
  if (!files.ok()) return ToGrpcStatus(files.status());
  images::ArchiveSink sink = [&](const void* data, size_t size) {
    if (context->IsCancelled()) return absl::CancelledError("the copy was cancelled by the client");
    kapal::v1::ArchiveChunk chunk;
    chunk.set_data(data, size);
    if (!writer->Write(chunk)) return absl::UnavailableError("the client went away");
    return absl::OkStatus();
  };
  if (request->path().empty()) return ToGrpcStatus(files->Export(sink));
  // Checked before anything is sent: a missing path is NOT_FOUND, not a cut tar.
  if (absl::StatusOr<runtime::ContainerPathStat> stat = files->Stat(request->path()); !stat.ok()) {
    return ToGrpcStatus(stat.status());
  }
  return ToGrpcStatus(files->Archive(request->path(), sink));
}

grpc::Status KapalContainersService::CopyTo(grpc::ServerContext*,
                                            grpc::ServerReader<kapal::v1::CopyToInput>* reader,
                                            kapal::v1::ContainerResponse*) {
  kapal::v1::CopyToInput input;
  if (!reader->Read(&input) || !input.has_target()) {
    return ToGrpcStatus(
        absl::InvalidArgumentError("the first message must name the container and directory"));
  }
  kapal::v1::CopyToTarget target = input.target();
  absl::StatusOr<runtime::ContainerFiles> files = runtime_.FilesOf(target.container_id());
  if (!files.ok()) return ToGrpcStatus(files.status());
  absl::StatusOr<SpooledUpload> upload = SpoolUpload(
      scratch_dir_, "copy-to", "archive.tar", [&]() -> absl::StatusOr<std::optional<std::string>> {
        if (!reader->Read(&input)) return std::nullopt;
        if (!input.has_data()) {
          return absl::InvalidArgumentError(
              "after the target, a copy takes only pieces of the tar");
        }
        return std::move(*input.mutable_data());
      });
  if (!upload.ok()) return ToGrpcStatus(upload.status());
  runtime::CopyInOptions options;
  options.owner_from_container = target.owner_from_container();
  return ToGrpcStatus(files->Extract(target.directory(), upload->path, options));
}

grpc::Status KapalContainersService::Exec(grpc::ServerContext*,
                                          const kapal::v1::ExecRequest* request,
                                          kapal::v1::ExecResponse* response) {
  if (request->cmd().empty()) {
    return ToGrpcStatus(absl::InvalidArgumentError("exec needs a command"));
  }
  if (request->timeout_seconds() < 0) {
    return ToGrpcStatus(absl::InvalidArgumentError("the timeout must not be negative"));
  }
  runtime::ExecOptions options;
  options.cmd.assign(request->cmd().begin(), request->cmd().end());
  options.env.assign(request->env().begin(), request->env().end());
  for (const std::string& item : options.env) {
    if (item.find('=') == std::string::npos || item.front() == '=') {
      return ToGrpcStatus(
          absl::InvalidArgumentError("environment entries are NAME=VALUE, not \"" + item + "\""));
    }
  }
  if (!request->working_dir().empty() && request->working_dir().front() != '/') {
    return ToGrpcStatus(absl::InvalidArgumentError(
        "the working dir must be an absolute path, not \"" + request->working_dir() + "\""));
  }
  options.working_dir = request->working_dir();
  options.user = request->user();
  options.privileged = request->privileged();
  absl::StatusOr<runtime::ExecResult> result = runtime_.ExecSync(
      request->container_id(), options, std::chrono::seconds(request->timeout_seconds()));
  if (!result.ok()) return ToGrpcStatus(result.status());
  response->set_stdout(result->output);
  response->set_stderr(result->errors);
  response->set_exit_code(result->exit_code);
  return grpc::Status::OK;
}

}  // namespace kapal::cri
