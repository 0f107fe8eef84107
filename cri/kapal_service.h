#pragma once

#include "api/kapal.grpc.pb.h"
#include "runtime/images.h"

namespace kapal::cri {

// kapal.v1.Images: image work CRI has no room for (pull with progress, import, export, push,
// tag).
class KapalImagesService final : public kapal::v1::Images::Service {
 public:
  KapalImagesService(runtime::Images& images, std::string scratch_dir)
      : images_(images), scratch_dir_(std::move(scratch_dir)) {}

  grpc::Status Pull(grpc::ServerContext* context, const kapal::v1::PullRequest* request,
                    grpc::ServerWriter<kapal::v1::PullEvent>* writer) override;
  grpc::Status Import(grpc::ServerContext* context,
                      grpc::ServerReader<kapal::v1::ArchiveChunk>* reader,
                      kapal::v1::ImportResponse* response) override;
  grpc::Status Export(grpc::ServerContext* context, const kapal::v1::ExportRequest* request,
                      grpc::ServerWriter<kapal::v1::ArchiveChunk>* writer) override;
  grpc::Status Push(grpc::ServerContext* context, const kapal::v1::PushRequest* request,
                    grpc::ServerWriter<kapal::v1::PushEvent>* writer) override;
  grpc::Status Tag(grpc::ServerContext* context, const kapal::v1::TagRequest* request,
                   kapal::v1::TagResponse* response) override;

 private:
  runtime::Images& images_;
  std::string scratch_dir_;  // where an uploaded archive waits while it is imported
};

}  // namespace kapal::cri
