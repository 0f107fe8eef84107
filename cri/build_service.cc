#include "cri/build_service.h"

#include "absl/strings/str_cat.h"
#include "base/temp_dir.h"
#include "cri/grpc_status.h"
#include "cri/upload_spool.h"

namespace kapal::cri {

grpc::Status KapalBuildsService::Build(
    grpc::ServerContext* context,
    grpc::ServerReaderWriter<kapal::v1::BuildEvent, kapal::v1::BuildInput>* stream) {
  kapal::v1::BuildInput input;
  if (!stream->Read(&input) || !input.has_options()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "the first message of a build carries its options");
  }
  const kapal::v1::BuildOptions& given = input.options();
  builder::BuildOptions options;
  options.tags.assign(given.tags().begin(), given.tags().end());
  if (!given.dockerfile().empty()) options.dockerfile = given.dockerfile();
  options.build_args.insert(given.build_args().begin(), given.build_args().end());
  options.labels.insert(given.labels().begin(), given.labels().end());
  options.target = given.target();
  options.no_cache = given.no_cache();
  options.pull = given.pull();
  options.network_mode = given.network_mode();

  absl::StatusOr<SpooledUpload> upload = SpoolUpload(
      scratch_dir_, "build-upload", "context.tar",
      [&]() -> absl::StatusOr<std::optional<std::string>> {
        if (!stream->Read(&input)) return std::nullopt;
        if (!input.has_context()) {
          return absl::InvalidArgumentError("after the options, a build takes only context pieces");
        }
        return std::move(*input.mutable_context());
      });
  if (!upload.ok()) return ToGrpcStatus(upload.status());
  absl::StatusOr<base::TempDir> unpacked = builder_.UnpackContext(upload->path);
  if (!unpacked.ok()) return ToGrpcStatus(unpacked.status());
  options.context_dir = unpacked->Path();

  builder::BuildOutput output = [stream](const std::string& text) {
    kapal::v1::BuildEvent event;
    event.set_output(text);
    stream->Write(event);
  };
  builder::BuildCancelled cancelled = [context] { return context->IsCancelled(); };
  absl::StatusOr<builder::BuildResult> built = builder_.Build(options, output, cancelled);
  if (!built.ok()) {
    // The failing RUN's exit code, for a client that exits with it (as docker build does).
    if (std::optional<int> code = builder::RunExitCodeOf(built.status())) {
      context->AddTrailingMetadata(std::string(kRunExitCodeMetadata), std::to_string(*code));
    }
    return ToGrpcStatus(built.status());
  }
  kapal::v1::BuildEvent done;
  done.set_image_id(built->image_id);
  stream->Write(done);
  return grpc::Status::OK;
}

grpc::Status KapalBuildsService::Commit(grpc::ServerContext*,
                                        const kapal::v1::CommitRequest* request,
                                        kapal::v1::CommitResponse* response) {
  builder::CommitOptions options;
  options.container_id = request->container_id();
  options.reference = request->reference();
  options.comment = request->comment();
  options.author = request->author();
  options.changes.assign(request->changes().begin(), request->changes().end());
  options.pause = !request->no_pause();
  absl::StatusOr<std::string> id = builder_.Commit(options);
  if (!id.ok()) return ToGrpcStatus(id.status());
  response->set_image_id(*id);
  return grpc::Status::OK;
}

grpc::Status KapalBuildsService::Import(grpc::ServerContext*,
                                        grpc::ServerReader<kapal::v1::RootfsImportInput>* reader,
                                        kapal::v1::CommitResponse* response) {
  kapal::v1::RootfsImportInput input;
  if (!reader->Read(&input) || !input.has_options()) {
    return ToGrpcStatus(absl::InvalidArgumentError("the first message must carry the options"));
  }
  builder::ImportOptions options;
  options.reference = input.options().reference();
  options.comment = input.options().comment();
  options.changes.assign(input.options().changes().begin(), input.options().changes().end());
  absl::StatusOr<SpooledUpload> upload =
      SpoolUpload(scratch_dir_, "rootfs-import", "rootfs.tar",
                  [&]() -> absl::StatusOr<std::optional<std::string>> {
                    if (!reader->Read(&input)) return std::nullopt;
                    if (!input.has_data()) {
                      return absl::InvalidArgumentError(
                          "after the options, an import takes only pieces of the tar");
                    }
                    return std::move(*input.mutable_data());
                  });
  if (!upload.ok()) return ToGrpcStatus(upload.status());
  options.tar_path = upload->path;
  absl::StatusOr<std::string> id = builder_.Import(options);
  if (!id.ok()) return ToGrpcStatus(id.status());
  response->set_image_id(*id);
  return grpc::Status::OK;
}

}  // namespace kapal::cri
