#pragma once

#include "api/kapal.grpc.pb.h"
#include "builder/builder.h"

namespace kapal::cri {

// Trailing metadata of a Build that a RUN failed: that command's exit code.
inline constexpr char kRunExitCodeMetadata[] = "kapal-run-exit-code";

// kapal.v1.Builds: `kapalctl build` and `commit`, on the same builder as the Docker API's POST
// /build.
class KapalBuildsService final : public kapal::v1::Builds::Service {
 public:
  KapalBuildsService(builder::Builder& builder, std::string scratch_dir)
      : builder_(builder), scratch_dir_(std::move(scratch_dir)) {}

  grpc::Status Build(
      grpc::ServerContext* context,
      grpc::ServerReaderWriter<kapal::v1::BuildEvent, kapal::v1::BuildInput>* stream) override;
  grpc::Status Commit(grpc::ServerContext* context, const kapal::v1::CommitRequest* request,
                      kapal::v1::CommitResponse* response) override;
  grpc::Status Import(grpc::ServerContext* context,
                      grpc::ServerReader<kapal::v1::RootfsImportInput>* reader,
                      kapal::v1::CommitResponse* response) override;

 private:
  builder::Builder& builder_;
  std::string scratch_dir_;  // where the uploaded context waits while it is unpacked
};

}  // namespace kapal::cri
