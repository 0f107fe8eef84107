#pragma once

#include "base/logger.h"
#include "cri/proto/kapal.grpc.pb.h"
#include "images/puller.h"

namespace kapal::cri {

// kapal.v1.Images: image work CRI has no room for (pull with progress).
class KapalImagesService final : public kapal::v1::Images::Service {
 public:
  KapalImagesService(images::Puller& puller, base::Logger& logger) : puller_(puller), logger_(logger) {}

  grpc::Status Pull(grpc::ServerContext* context, const kapal::v1::PullRequest* request,
                    grpc::ServerWriter<kapal::v1::PullEvent>* writer) override;

 private:
  images::Puller& puller_;
  base::Logger& logger_;
};

}  // namespace kapal::cri
