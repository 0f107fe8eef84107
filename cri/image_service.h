#pragma once

#include <memory>

#include "base/logger.h"
#include "cri/config.h"
#include "cri/proto/cri_api.h"
#include "images/content_store.h"
#include "images/image_store.h"
#include "images/puller.h"
#include "metrics/metrics.h"
#include "snapshotter/snapshotter.h"

namespace kapal::cri {

// The runtime.v1.ImageService of kapald.
class ImageService final : public runtime::v1::ImageService::Service {
 public:
  ImageService(const Config& config, images::Puller& puller, images::ImageStore& images,
               images::ContentStore& content, snapshotter::Snapshotter& snapshots,
               metrics::Registry& metrics, base::Logger& logger);

  grpc::Status PullImage(grpc::ServerContext* context, const runtime::v1::PullImageRequest* request,
                         runtime::v1::PullImageResponse* response) override;
  grpc::Status ListImages(grpc::ServerContext* context,
                          const runtime::v1::ListImagesRequest* request,
                          runtime::v1::ListImagesResponse* response) override;
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
  // Removes blobs and committed snapshots that no image uses any more.
  absl::Status CollectGarbage(const std::vector<images::Digest>& released_blobs);

  const Config& config_;
  images::Puller& puller_;
  images::ImageStore& images_;
  images::ContentStore& content_;
  snapshotter::Snapshotter& snapshots_;
  base::Logger& logger_;
  prometheus::Family<prometheus::Counter>& pulls_;
  std::mutex removal_mutex_;
};

// CRI's view of an image record: uid when the config's User is numeric, else username.
runtime::v1::Image ToCriImage(const images::ImageRecord& image);

}  // namespace kapal::cri
