#pragma once

#include "base/logger.h"
#include "cri/proto/kapal.grpc.pb.h"
#include "images/content_store.h"
#include "images/image_store.h"
#include "images/puller.h"

namespace kapal::cri {

// kapal.v1.Images: image work CRI has no room for (pull with progress).
class KapalImagesService final : public kapal::v1::Images::Service {
 public:
  KapalImagesService(images::Puller& puller, images::ContentStore& content,
                     images::ImageStore& images, std::string scratch_dir, base::Logger& logger)
      : puller_(puller),
        content_(content),
        images_(images),
        scratch_dir_(std::move(scratch_dir)),
        logger_(logger) {}

  grpc::Status Pull(grpc::ServerContext* context, const kapal::v1::PullRequest* request,
                    grpc::ServerWriter<kapal::v1::PullEvent>* writer) override;
  grpc::Status Import(grpc::ServerContext* context,
                      grpc::ServerReader<kapal::v1::ArchiveChunk>* reader,
                      kapal::v1::ImportResponse* response) override;
  grpc::Status Export(grpc::ServerContext* context, const kapal::v1::ExportRequest* request,
                      grpc::ServerWriter<kapal::v1::ArchiveChunk>* writer) override;

 private:
  images::Puller& puller_;
  images::ContentStore& content_;
  images::ImageStore& images_;
  std::string scratch_dir_;  // where an uploaded archive waits while it is imported
  base::Logger& logger_;
};

}  // namespace kapal::cri
