#include "cri/kapal_service.h"

#include <mutex>

#include "cri/grpc_status.h"

namespace kapal::cri {

grpc::Status KapalImagesService::Pull(grpc::ServerContext*, const kapal::v1::PullRequest* request,
                                      grpc::ServerWriter<kapal::v1::PullEvent>* writer) {
  if (request->image().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "Pull: image is empty");
  }
  images::Credentials credentials{request->username(), request->password(),
                                  request->identity_token(), request->registry_token()};
  if (absl::Status decoded = images::DecodeAuthField(request->auth(), credentials); !decoded.ok()) {
    return ToGrpcStatus(decoded);
  }
  // Layers download on several threads; a gRPC writer takes one message at a time.
  std::mutex write_mutex;
  absl::StatusOr<images::ImageRecord> image =
      puller_.Pull(request->image(), credentials, [&](const images::LayerProgress& progress) {
        kapal::v1::PullEvent event;
        kapal::v1::LayerProgress* layer = event.mutable_layer();
        layer->set_digest(progress.digest);
        layer->set_done(progress.done);
        layer->set_total(progress.total);
        layer->set_cached(progress.cached);
        std::lock_guard lock(write_mutex);
        writer->Write(event);
      });
  if (!image.ok()) {
    logger_.Warn(image.status().message());
    return ToGrpcStatus(image.status());
  }
  logger_.Info("pulled ", request->image(), " as ", image->id.String());
  kapal::v1::PullEvent done;
  done.set_image_id(image->id.String());
  writer->Write(done);
  return grpc::Status::OK;
}

}  // namespace kapal::cri
