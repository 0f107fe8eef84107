#include "cri/containers_service.h"

#include <fcntl.h>

#include "base/files.h"
#include "base/temp_dir.h"
#include "base/unique_fd.h"
#include "cri/grpc_status.h"

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
  absl::StatusOr<base::TempDir> scratch = base::TempDir::Create("copy-to", scratch_dir_);
  if (!scratch.ok()) return ToGrpcStatus(scratch.status());
  std::string path = scratch->Join("archive.tar");
  base::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!fd) return ToGrpcStatus(base::ErrnoStatus(errno, "create " + path));
  while (reader->Read(&input)) {
    if (absl::Status written = base::WriteAll(fd.Get(), input.data(), path); !written.ok()) {
      return ToGrpcStatus(written);
    }
  }
  fd.Reset();
  runtime::CopyInOptions options;
  options.owner_from_container = target.owner_from_container();
  return ToGrpcStatus(files->Extract(target.directory(), path, options));
}

}  // namespace kapal::cri
