#pragma once

#include <memory>

#include "api/cri_services.h"
#include "images/image_store.h"
#include "runtime/images.h"

namespace kapal::cri {

// The runtime.v1.ImageService of kapald.
class ImageService final : public runtime::v1::ImageService::Service {
 public:
  explicit ImageService(runtime::Images& images) : images_(images) {}

  grpc::Status PullImage(grpc::ServerContext* context, const runtime::v1::PullImageRequest* request,
                         runtime::v1::PullImageResponse* response) override;
  grpc::Status ListImages(grpc::ServerContext* context,
                          const runtime::v1::ListImagesRequest* request,
                          runtime::v1::ListImagesResponse* response) override;
  // ListImages in chunks (KEP-5825, list_stream.h).
  grpc::Status StreamImages(grpc::ServerContext* context,
                            const runtime::v1::StreamImagesRequest* request,
                            grpc::ServerWriter<runtime::v1::StreamImagesResponse>* writer) override;
  grpc::Status ImageStatus(grpc::ServerContext* context,
                           const runtime::v1::ImageStatusRequest* request,
                           runtime::v1::ImageStatusResponse* response) override;
  grpc::Status RemoveImage(grpc::ServerContext* context,
                           const runtime::v1::RemoveImageRequest* request,
                           runtime::v1::RemoveImageResponse* response) override;
  grpc::Status ImageFsInfo(grpc::ServerContext* context,
                           const runtime::v1::ImageFsInfoRequest* request,
                           runtime::v1::ImageFsInfoResponse* response) override;

 private:
  runtime::Images& images_;
};

// CRI's view of an image record: uid when the config's User is numeric, else username.
runtime::v1::Image ToCriImage(const images::ImageRecord& image);

}  // namespace kapal::cri
