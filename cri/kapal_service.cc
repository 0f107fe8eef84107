#include "cri/kapal_service.h"

#include <mutex>

#include "absl/strings/str_cat.h"
#include "cri/grpc_status.h"
#include "cri/upload_spool.h"

namespace kapal::cri {

namespace {

// CRI's AuthConfig fields, as both Pull and Push carry them.
template <typename Request>
absl::StatusOr<images::Credentials> CredentialsOf(const Request& request) {
  images::Credentials credentials{request.username(), request.password(), request.identity_token(),
                                  request.registry_token()};
  if (absl::Status decoded = images::DecodeAuthField(request.auth(), credentials); !decoded.ok()) {
    return decoded;
  }
  return credentials;
}

const char* PhaseName(images::PushProgress::Phase phase) {
  switch (phase) {
    case images::PushProgress::Phase::kPreparing:
      return "preparing";
    case images::PushProgress::Phase::kExists:
      return "exists";
    case images::PushProgress::Phase::kMounted:
      return "mounted";
    case images::PushProgress::Phase::kPushing:
      return "pushing";
    case images::PushProgress::Phase::kPushed:
      return "pushed";
  }
  return "pushing";
}

}  // namespace

grpc::Status KapalImagesService::Push(grpc::ServerContext*, const kapal::v1::PushRequest* request,
                                      grpc::ServerWriter<kapal::v1::PushEvent>* writer) {
  absl::StatusOr<images::Credentials> credentials = CredentialsOf(*request);
  if (!credentials.ok()) return ToGrpcStatus(credentials.status());
  absl::StatusOr<images::PushResult> pushed =
      images_.Push(request->image(), *credentials, [&](const images::PushProgress& progress) {
        kapal::v1::PushEvent event;
        kapal::v1::BlobProgress* blob = event.mutable_blob();
        blob->set_digest(progress.digest);
        blob->set_phase(PhaseName(progress.phase));
        blob->set_done(progress.done);
        blob->set_total(progress.total);
        writer->Write(event);
      });
  if (!pushed.ok()) return ToGrpcStatus(pushed.status());
  kapal::v1::PushEvent done;
  done.set_manifest_digest(pushed->manifest_digest.String());
  writer->Write(done);
  return grpc::Status::OK;
}

grpc::Status KapalImagesService::Tag(grpc::ServerContext*, const kapal::v1::TagRequest* request,
                                     kapal::v1::TagResponse* response) {
  if (request->source().empty() || request->target().empty()) {
    return ToGrpcStatus(absl::InvalidArgumentError("tag needs a source image and a target name"));
  }
  absl::StatusOr<images::ImageRecord> tagged = images_.Tag(request->source(), request->target());
  if (!tagged.ok()) return ToGrpcStatus(tagged.status());
  response->set_image_id(tagged->id.String());
  return grpc::Status::OK;
}

grpc::Status KapalImagesService::Pull(grpc::ServerContext*, const kapal::v1::PullRequest* request,
                                      grpc::ServerWriter<kapal::v1::PullEvent>* writer) {
  absl::StatusOr<images::Credentials> credentials = CredentialsOf(*request);
  if (!credentials.ok()) return ToGrpcStatus(credentials.status());
  // Layers download on several threads; a gRPC writer takes one message at a time.
  std::mutex write_mutex;
  absl::StatusOr<images::ImageRecord> image =
      images_.Pull(request->image(), *credentials, [&](const images::LayerProgress& progress) {
        kapal::v1::PullEvent event;
        kapal::v1::LayerProgress* layer = event.mutable_layer();
        layer->set_digest(progress.digest);
        layer->set_done(progress.done);
        layer->set_total(progress.total);
        layer->set_cached(progress.cached);
        std::lock_guard lock(write_mutex);
        writer->Write(event);
      });
  if (!image.ok()) return ToGrpcStatus(image.status());
  kapal::v1::PullEvent done;
  done.set_image_id(image->id.String());
  writer->Write(done);
  return grpc::Status::OK;
}

grpc::Status KapalImagesService::Import(grpc::ServerContext*,
                                        grpc::ServerReader<kapal::v1::ArchiveChunk>* reader,
                                        kapal::v1::ImportResponse* response) {
  // The archive is read twice over (entries, then images), so it lands in a file first; the
  // directory goes with everything in it when this call ends.
  kapal::v1::ArchiveChunk chunk;
  absl::StatusOr<SpooledUpload> upload = SpoolUpload(
      scratch_dir_, "import", "archive.tar", [&]() -> absl::StatusOr<std::optional<std::string>> {
        if (!reader->Read(&chunk)) return std::nullopt;
        return std::move(*chunk.mutable_data());
      });
  if (!upload.ok()) return ToGrpcStatus(upload.status());
  absl::StatusOr<std::vector<images::ImageRecord>> imported = images_.Import(upload->path);
  if (!imported.ok()) return ToGrpcStatus(imported.status());
  for (const images::ImageRecord& image : *imported) {
    kapal::v1::ImportedImage* out = response->add_images();
    out->set_id(image.id.String());
    for (const std::string& tag : image.repo_tags) out->add_repo_tags(tag);
  }
  return grpc::Status::OK;
}

grpc::Status KapalImagesService::Export(grpc::ServerContext* context,
                                        const kapal::v1::ExportRequest* request,
                                        grpc::ServerWriter<kapal::v1::ArchiveChunk>* writer) {
  absl::StatusOr<images::ImageRecord> image = images_.Find(request->image());
  if (!image.ok()) return ToGrpcStatus(image.status());
  absl::Status exported = images_.Export({*image}, [&](const char* data, size_t size) {
    if (context->IsCancelled()) return absl::CancelledError("export cancelled by the client");
    kapal::v1::ArchiveChunk chunk;
    chunk.set_data(data, size);
    if (!writer->Write(chunk)) return absl::UnavailableError("the client went away");
    return absl::OkStatus();
  });
  return ToGrpcStatus(exported);
}

}  // namespace kapal::cri
