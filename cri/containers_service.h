#pragma once

#include <string>

#include "api/kapal.grpc.pb.h"
#include "runtime/runtime.h"

namespace kapal::cri {

// kapal.v1.Containers: pause, top, cp and export for every container, over the core (the same
// calls the Docker API's endpoints make).
class KapalContainersService final : public kapal::v1::Containers::Service {
 public:
  KapalContainersService(runtime::Runtime& runtime, std::string scratch_dir)
      : runtime_(runtime), scratch_dir_(std::move(scratch_dir)) {}

  grpc::Status Pause(grpc::ServerContext* context, const kapal::v1::ContainerRequest* request,
                     kapal::v1::ContainerResponse* response) override;
  grpc::Status Unpause(grpc::ServerContext* context, const kapal::v1::ContainerRequest* request,
                       kapal::v1::ContainerResponse* response) override;
  grpc::Status Top(grpc::ServerContext* context, const kapal::v1::ContainerRequest* request,
                   kapal::v1::TopResponse* response) override;
  grpc::Status CopyFrom(grpc::ServerContext* context, const kapal::v1::CopyFromRequest* request,
                        grpc::ServerWriter<kapal::v1::ArchiveChunk>* writer) override;
  grpc::Status CopyTo(grpc::ServerContext* context,
                      grpc::ServerReader<kapal::v1::CopyToInput>* reader,
                      kapal::v1::ContainerResponse* response) override;
  grpc::Status Exec(grpc::ServerContext* context, const kapal::v1::ExecRequest* request,
                    kapal::v1::ExecResponse* response) override;

 private:
  runtime::Runtime& runtime_;
  std::string scratch_dir_;  // where an uploaded tar waits while it is extracted
};

}  // namespace kapal::cri
