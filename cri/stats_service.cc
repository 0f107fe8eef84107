// The stats RPCs of runtime.v1.RuntimeService: the core measures, the door only wraps.
#include "cri/grpc_status.h"
#include "cri/list_stream.h"
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

grpc::Status RuntimeService::StreamContainerStats(
    grpc::ServerContext* context, const runtime::v1::StreamContainerStatsRequest* request,
    grpc::ServerWriter<runtime::v1::StreamContainerStatsResponse>* writer) {
  runtime::v1::ListContainerStatsRequest list;
  *list.mutable_filter() = request->filter();
  runtime::v1::ListContainerStatsResponse listed;
  if (grpc::Status status = ListContainerStats(context, &list, &listed); !status.ok()) {
    return status;
  }
  return SendInChunks<runtime::v1::StreamContainerStatsResponse>(
      writer, *listed.mutable_stats(),
      [](runtime::v1::StreamContainerStatsResponse& r) { return r.mutable_container_stats(); });
}

grpc::Status RuntimeService::StreamPodSandboxStats(
    grpc::ServerContext* context, const runtime::v1::StreamPodSandboxStatsRequest* request,
    grpc::ServerWriter<runtime::v1::StreamPodSandboxStatsResponse>* writer) {
  runtime::v1::ListPodSandboxStatsRequest list;
  *list.mutable_filter() = request->filter();
  runtime::v1::ListPodSandboxStatsResponse listed;
  if (grpc::Status status = ListPodSandboxStats(context, &list, &listed); !status.ok()) {
    return status;
  }
  return SendInChunks<runtime::v1::StreamPodSandboxStatsResponse>(
      writer, *listed.mutable_stats(),
      [](runtime::v1::StreamPodSandboxStatsResponse& r) { return r.mutable_pod_sandbox_stats(); });
}

grpc::Status RuntimeService::ListMetricDescriptors(
    grpc::ServerContext*, const runtime::v1::ListMetricDescriptorsRequest*,
    runtime::v1::ListMetricDescriptorsResponse* response) {
  for (runtime::v1::MetricDescriptor& descriptor : runtime_.MetricDescriptors()) {
    *response->add_descriptors() = std::move(descriptor);
  }
  return grpc::Status::OK;
}

grpc::Status RuntimeService::ListPodSandboxMetrics(
    grpc::ServerContext*, const runtime::v1::ListPodSandboxMetricsRequest*,
    runtime::v1::ListPodSandboxMetricsResponse* response) {
  for (runtime::v1::PodSandboxMetrics& metrics : runtime_.ListPodSandboxMetrics()) {
    *response->add_pod_metrics() = std::move(metrics);
  }
  return grpc::Status::OK;
}

grpc::Status RuntimeService::StreamPodSandboxMetrics(
    grpc::ServerContext* context, const runtime::v1::StreamPodSandboxMetricsRequest*,
    grpc::ServerWriter<runtime::v1::StreamPodSandboxMetricsResponse>* writer) {
  runtime::v1::ListPodSandboxMetricsResponse listed;
  if (grpc::Status status = ListPodSandboxMetrics(context, nullptr, &listed); !status.ok()) {
    return status;
  }
  return SendInChunks<runtime::v1::StreamPodSandboxMetricsResponse>(
      writer, *listed.mutable_pod_metrics(), [](runtime::v1::StreamPodSandboxMetricsResponse& r) {
        return r.mutable_pod_sandbox_metrics();
      });
}

}  // namespace kapal::cri
