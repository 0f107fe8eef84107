#pragma once

// cri: the CRI front door. The runtime.v1 RuntimeService and ImageService (and kapal.v1.Images)
// over gRPC: requests checked for what belongs to the CRI API, turned into runtime:: calls, and
// absl::Status turned into grpc::Status in one place (grpc_status.h). No node logic lives here.

#include <string>

#include "api/cri_services.h"
#include "base/logger.h"
#include "nlohmann/json.hpp"
#include "runtime/runtime.h"
#include "streaming/server.h"

namespace kapal::cri {

// The runtime.v1.RuntimeService of kapald. RPCs not overridden here answer UNIMPLEMENTED.
class RuntimeService final : public runtime::v1::RuntimeService::Service {
 public:
  // CONFIG_JSON is the effective configuration as Status verbose shows it.
  // STREAMING hands out the URLs of Exec, Attach and PortForward; null when it is off.
  RuntimeService(runtime::Runtime& runtime, nlohmann::json config_json, std::string metrics_address,
                 streaming::Server* streaming, base::Logger& logger);

  grpc::Status Version(grpc::ServerContext* context, const runtime::v1::VersionRequest* request,
                       runtime::v1::VersionResponse* response) override;
  grpc::Status Status(grpc::ServerContext* context, const runtime::v1::StatusRequest* request,
                      runtime::v1::StatusResponse* response) override;
  grpc::Status RuntimeConfig(grpc::ServerContext* context,
                             const runtime::v1::RuntimeConfigRequest* request,
                             runtime::v1::RuntimeConfigResponse* response) override;
  grpc::Status UpdateRuntimeConfig(grpc::ServerContext* context,
                                   const runtime::v1::UpdateRuntimeConfigRequest* request,
                                   runtime::v1::UpdateRuntimeConfigResponse* response) override;

  // Pods and containers (pod_service.cc).
  grpc::Status RunPodSandbox(grpc::ServerContext* context,
                             const runtime::v1::RunPodSandboxRequest* request,
                             runtime::v1::RunPodSandboxResponse* response) override;
  grpc::Status StopPodSandbox(grpc::ServerContext* context,
                              const runtime::v1::StopPodSandboxRequest* request,
                              runtime::v1::StopPodSandboxResponse* response) override;
  grpc::Status RemovePodSandbox(grpc::ServerContext* context,
                                const runtime::v1::RemovePodSandboxRequest* request,
                                runtime::v1::RemovePodSandboxResponse* response) override;
  grpc::Status PodSandboxStatus(grpc::ServerContext* context,
                                const runtime::v1::PodSandboxStatusRequest* request,
                                runtime::v1::PodSandboxStatusResponse* response) override;
  grpc::Status ListPodSandbox(grpc::ServerContext* context,
                              const runtime::v1::ListPodSandboxRequest* request,
                              runtime::v1::ListPodSandboxResponse* response) override;
  grpc::Status CreateContainer(grpc::ServerContext* context,
                               const runtime::v1::CreateContainerRequest* request,
                               runtime::v1::CreateContainerResponse* response) override;
  grpc::Status StartContainer(grpc::ServerContext* context,
                              const runtime::v1::StartContainerRequest* request,
                              runtime::v1::StartContainerResponse* response) override;
  grpc::Status StopContainer(grpc::ServerContext* context,
                             const runtime::v1::StopContainerRequest* request,
                             runtime::v1::StopContainerResponse* response) override;
  grpc::Status RemoveContainer(grpc::ServerContext* context,
                               const runtime::v1::RemoveContainerRequest* request,
                               runtime::v1::RemoveContainerResponse* response) override;
  grpc::Status ListContainers(grpc::ServerContext* context,
                              const runtime::v1::ListContainersRequest* request,
                              runtime::v1::ListContainersResponse* response) override;
  grpc::Status ContainerStatus(grpc::ServerContext* context,
                               const runtime::v1::ContainerStatusRequest* request,
                               runtime::v1::ContainerStatusResponse* response) override;
  grpc::Status ExecSync(grpc::ServerContext* context, const runtime::v1::ExecSyncRequest* request,
                        runtime::v1::ExecSyncResponse* response) override;
  grpc::Status ReopenContainerLog(grpc::ServerContext* context,
                                  const runtime::v1::ReopenContainerLogRequest* request,
                                  runtime::v1::ReopenContainerLogResponse* response) override;
  grpc::Status UpdateContainerResources(
      grpc::ServerContext* context, const runtime::v1::UpdateContainerResourcesRequest* request,
      runtime::v1::UpdateContainerResourcesResponse* response) override;
  // The Stream* forms of the lists (KEP-5825): the same items, in chunks (list_stream.h).
  grpc::Status StreamPodSandboxes(
      grpc::ServerContext* context, const runtime::v1::StreamPodSandboxesRequest* request,
      grpc::ServerWriter<runtime::v1::StreamPodSandboxesResponse>* writer) override;
  grpc::Status StreamContainers(
      grpc::ServerContext* context, const runtime::v1::StreamContainersRequest* request,
      grpc::ServerWriter<runtime::v1::StreamContainersResponse>* writer) override;
  grpc::Status StreamContainerStats(
      grpc::ServerContext* context, const runtime::v1::StreamContainerStatsRequest* request,
      grpc::ServerWriter<runtime::v1::StreamContainerStatsResponse>* writer) override;
  grpc::Status StreamPodSandboxStats(
      grpc::ServerContext* context, const runtime::v1::StreamPodSandboxStatsRequest* request,
      grpc::ServerWriter<runtime::v1::StreamPodSandboxStatsResponse>* writer) override;
  // A running container's state into an archive (CRIU); see Runtime::CheckpointContainer.
  grpc::Status CheckpointContainer(grpc::ServerContext* context,
                                   const runtime::v1::CheckpointContainerRequest* request,
                                   runtime::v1::CheckpointContainerResponse* response) override;
  // Lifecycle events of pods and containers (evented PLEG), each with its pod's whole status.
  grpc::Status GetContainerEvents(
      grpc::ServerContext* context, const runtime::v1::GetEventsRequest* request,
      grpc::ServerWriter<runtime::v1::ContainerEventResponse>* writer) override;
  grpc::Status UpdatePodSandboxResources(
      grpc::ServerContext* context, const runtime::v1::UpdatePodSandboxResourcesRequest* request,
      runtime::v1::UpdatePodSandboxResourcesResponse* response) override;

  // Streaming (streaming_service.cc): checked here, served by the streaming server.
  grpc::Status Exec(grpc::ServerContext* context, const runtime::v1::ExecRequest* request,
                    runtime::v1::ExecResponse* response) override;
  grpc::Status Attach(grpc::ServerContext* context, const runtime::v1::AttachRequest* request,
                      runtime::v1::AttachResponse* response) override;
  grpc::Status PortForward(grpc::ServerContext* context,
                           const runtime::v1::PortForwardRequest* request,
                           runtime::v1::PortForwardResponse* response) override;

  // Stats (stats_service.cc).
  grpc::Status ContainerStats(grpc::ServerContext* context,
                              const runtime::v1::ContainerStatsRequest* request,
                              runtime::v1::ContainerStatsResponse* response) override;
  grpc::Status ListContainerStats(grpc::ServerContext* context,
                                  const runtime::v1::ListContainerStatsRequest* request,
                                  runtime::v1::ListContainerStatsResponse* response) override;
  grpc::Status PodSandboxStats(grpc::ServerContext* context,
                               const runtime::v1::PodSandboxStatsRequest* request,
                               runtime::v1::PodSandboxStatsResponse* response) override;
  grpc::Status ListPodSandboxStats(grpc::ServerContext* context,
                                   const runtime::v1::ListPodSandboxStatsRequest* request,
                                   runtime::v1::ListPodSandboxStatsResponse* response) override;
  // cAdvisor-style metrics (kubelet's PodAndContainerStatsFromCRI).
  grpc::Status ListMetricDescriptors(grpc::ServerContext* context,
                                     const runtime::v1::ListMetricDescriptorsRequest* request,
                                     runtime::v1::ListMetricDescriptorsResponse* response) override;
  grpc::Status ListPodSandboxMetrics(grpc::ServerContext* context,
                                     const runtime::v1::ListPodSandboxMetricsRequest* request,
                                     runtime::v1::ListPodSandboxMetricsResponse* response) override;
  grpc::Status StreamPodSandboxMetrics(
      grpc::ServerContext* context, const runtime::v1::StreamPodSandboxMetricsRequest* request,
      grpc::ServerWriter<runtime::v1::StreamPodSandboxMetricsResponse>* writer) override;

 private:
  runtime::Runtime& runtime_;
  nlohmann::json config_json_;
  std::string metrics_address_;
  streaming::Server* streaming_;
  base::Logger& logger_;
};

}  // namespace kapal::cri
