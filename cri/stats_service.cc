// The stats RPCs of runtime.v1.RuntimeService: the core measures, the door only wraps.
#include "cri/grpc_status.h"
#include "cri/runtime_service.h"

namespace kapal::cri {

grpc::Status RuntimeService::ContainerStats(grpc::ServerContext*,
                                            const runtime::v1::ContainerStatsRequest* request,
                                            runtime::v1::ContainerStatsResponse* response) {
  absl::StatusOr<runtime::v1::ContainerStats> stats =
      runtime_.ContainerStats(request->container_id());
  if (!stats.ok()) return ToGrpcStatus(stats.status());
  *response->mutable_stats() = std::move(*stats);
  return grpc::Status::OK;
}

grpc::Status RuntimeService::ListContainerStats(
    grpc::ServerContext*, const runtime::v1::ListContainerStatsRequest* request,
    runtime::v1::ListContainerStatsResponse* response) {
  for (runtime::v1::ContainerStats& stats : runtime_.ListContainerStats(request->filter())) {
    *response->add_stats() = std::move(stats);
  }
  return grpc::Status::OK;
}

grpc::Status RuntimeService::PodSandboxStats(grpc::ServerContext*,
                                             const runtime::v1::PodSandboxStatsRequest* request,
                                             runtime::v1::PodSandboxStatsResponse* response) {
  absl::StatusOr<runtime::v1::PodSandboxStats> stats =
      runtime_.PodSandboxStats(request->pod_sandbox_id());
  if (!stats.ok()) return ToGrpcStatus(stats.status());
  *response->mutable_stats() = std::move(*stats);
  return grpc::Status::OK;
}

grpc::Status RuntimeService::ListPodSandboxStats(
    grpc::ServerContext*, const runtime::v1::ListPodSandboxStatsRequest* request,
    runtime::v1::ListPodSandboxStatsResponse* response) {
  for (runtime::v1::PodSandboxStats& stats : runtime_.ListPodSandboxStats(request->filter())) {
    *response->add_stats() = std::move(stats);
  }
  return grpc::Status::OK;
}

}  // namespace kapal::cri
