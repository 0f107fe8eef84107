// The pod and container RPCs of runtime.v1.RuntimeService: requests checked and turned into
// runtime::Runtime calls, records turned into CRI messages.

#include <chrono>
#include <memory>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "cri/grpc_status.h"
#include "cri/list_stream.h"
#include "cri/runtime_service.h"
#include "runtime/node_events.h"
#include "runtime/signals.h"
#include "runtime/stats.h"

namespace kapal::cri {

namespace {

using namespace runtime::v1;  // NOLINT: the CRI message names read best unqualified here

using runtime::LabelsMatch;

void FillPodSandbox(const runtime::Pod& pod, PodSandbox* out) {
  out->set_id(pod.id);
  *out->mutable_metadata() = pod.config.metadata();
  out->set_state(pod.ready ? SANDBOX_READY : SANDBOX_NOTREADY);
  out->set_created_at(pod.created_at);
  *out->mutable_labels() = pod.config.labels();
  *out->mutable_annotations() = pod.config.annotations();
  out->set_runtime_handler(pod.runtime_handler);
}

void FillContainer(const runtime::Container& c, runtime::v1::Container* out) {
  out->set_id(c.id);
  out->set_pod_sandbox_id(c.pod_id);
  *out->mutable_metadata() = c.config.metadata();
  out->mutable_image()->set_image(c.config.image().image());
  out->set_image_ref(c.image_ref);
  out->set_image_id(c.image_id);
  out->set_state(c.state);
  out->set_created_at(c.created_at);
  *out->mutable_labels() = c.config.labels();
  *out->mutable_annotations() = c.config.annotations();
}

void FillContainerStatus(const runtime::Container& c, runtime::v1::ContainerStatus* out) {
  out->set_id(c.id);
  *out->mutable_metadata() = c.config.metadata();
  out->set_state(c.state);
  out->set_created_at(c.created_at);
  out->set_started_at(c.started_at);
  out->set_finished_at(c.finished_at);
  out->set_exit_code(c.exit_code);
  out->mutable_image()->set_image(c.config.image().image());
  out->set_image_ref(c.image_ref);
  out->set_image_id(c.image_id);
  out->set_reason(c.reason);
  out->set_message(c.message);
  *out->mutable_labels() = c.config.labels();
  *out->mutable_annotations() = c.config.annotations();
  *out->mutable_mounts() = c.config.mounts();
  out->set_log_path(c.log_path);
  out->set_stop_signal(runtime::CriSignalOf(c.stop_signal));
  *out->mutable_resources()->mutable_linux() = c.config.linux().resources();
  if (c.user.has_value()) {
    LinuxContainerUser* user = out->mutable_user()->mutable_linux();
    user->set_uid(c.user->uid);
    user->set_gid(c.user->gid);
    // The groups the process really has, the primary one among them (kubelet compares them
    // with what the pod asked for under the Strict policy).
    for (uint32_t gid : c.user->additional_gids) user->add_supplemental_groups(gid);
  }
}

void FillPodSandboxStatus(const runtime::Pod& pod, runtime::v1::PodSandboxStatus* status) {
  status->set_id(pod.id);
  *status->mutable_metadata() = pod.config.metadata();
  status->set_state(pod.ready ? SANDBOX_READY : SANDBOX_NOTREADY);
  status->set_created_at(pod.created_at);
  if (!pod.ips.empty()) {
    status->mutable_network()->set_ip(pod.ips.front());
    for (size_t i = 1; i < pod.ips.size(); ++i) {
      status->mutable_network()->add_additional_ips()->set_ip(pod.ips[i]);
    }
  }
  *status->mutable_linux()->mutable_namespaces()->mutable_options() =
      pod.config.linux().security_context().namespace_options();
  *status->mutable_labels() = pod.config.labels();
  *status->mutable_annotations() = pod.config.annotations();
  status->set_runtime_handler(pod.runtime_handler);
}

ContainerEventType CriEventType(runtime::LifecycleChange change) {
  switch (change) {
    case runtime::LifecycleChange::kCreated:
      return CONTAINER_CREATED_EVENT;
    case runtime::LifecycleChange::kStarted:
      return CONTAINER_STARTED_EVENT;
    case runtime::LifecycleChange::kStopped:
      return CONTAINER_STOPPED_EVENT;
    case runtime::LifecycleChange::kDeleted:
      return CONTAINER_DELETED_EVENT;
  }
  return CONTAINER_CREATED_EVENT;
}

}  // namespace

grpc::Status RuntimeService::RunPodSandbox(grpc::ServerContext*,
                                           const RunPodSandboxRequest* request,
                                           RunPodSandboxResponse* response) {
  absl::StatusOr<std::string> id = runtime_.RunPod(request->config(), request->runtime_handler());
  if (!id.ok()) return ToGrpcStatus(id.status());
  response->set_pod_sandbox_id(*id);
  return grpc::Status::OK;
}

grpc::Status RuntimeService::StopPodSandbox(grpc::ServerContext*,
                                            const StopPodSandboxRequest* request,
                                            StopPodSandboxResponse*) {
  return ToGrpcStatus(runtime_.StopPod(request->pod_sandbox_id()));
}

grpc::Status RuntimeService::RemovePodSandbox(grpc::ServerContext*,
                                              const RemovePodSandboxRequest* request,
                                              RemovePodSandboxResponse*) {
  return ToGrpcStatus(runtime_.RemovePod(request->pod_sandbox_id()));
}

grpc::Status RuntimeService::PodSandboxStatus(grpc::ServerContext*,
                                              const PodSandboxStatusRequest* request,
                                              PodSandboxStatusResponse* response) {
  // The time is taken before the statuses are read: kubelet (with the EventedPLEG gate) keeps
  // the newest status by it, and these are at least as new as the time.
  response->set_timestamp(runtime::NowNanos());
  absl::StatusOr<runtime::Pod> pod = runtime_.GetPod(request->pod_sandbox_id());
  if (!pod.ok()) return ToGrpcStatus(pod.status());
  FillPodSandboxStatus(*pod, response->mutable_status());
  // kubelet with the EventedPLEG gate takes the pod's containers from here, not from
  // ListContainers (containerd and CRI-O fill them too), in the order given: newest first (oldest
  // first, a restarted container looked exited and kubelet restarted it again and again).
  for (const runtime::Container& c : runtime_.ListContainersOf(pod->id)) {
    FillContainerStatus(c, response->add_containers_statuses());
  }
  if (request->verbose()) {
    nlohmann::json info = {{"dir", pod->dir},
                           {"netns", pod->own.network ? pod->dir + "/net" : ""},
                           {"cni", pod->cni_result}};
    (*response->mutable_info())["info"] = info.dump();
  }
  return grpc::Status::OK;
}

grpc::Status RuntimeService::ListPodSandbox(grpc::ServerContext*,
                                            const ListPodSandboxRequest* request,
                                            ListPodSandboxResponse* response) {
  const PodSandboxFilter& filter = request->filter();
  for (const runtime::Pod& pod : runtime_.ListPods()) {
    if (!filter.id().empty() && !absl::StartsWith(pod.id, filter.id())) continue;
    if (filter.has_state() &&
        filter.state().state() != (pod.ready ? SANDBOX_READY : SANDBOX_NOTREADY)) {
      continue;
    }
    if (!LabelsMatch(pod.config.labels(), filter.label_selector())) continue;
    FillPodSandbox(pod, response->add_items());
  }
  return grpc::Status::OK;
}

grpc::Status RuntimeService::CreateContainer(grpc::ServerContext*,
                                             const CreateContainerRequest* request,
                                             CreateContainerResponse* response) {
  absl::StatusOr<std::string> id =
      runtime_.CreateContainer(request->pod_sandbox_id(), request->config());
  if (!id.ok()) return ToGrpcStatus(id.status());
  response->set_container_id(*id);
  return grpc::Status::OK;
}

grpc::Status RuntimeService::StartContainer(grpc::ServerContext*,
                                            const StartContainerRequest* request,
                                            StartContainerResponse*) {
  return ToGrpcStatus(runtime_.StartContainer(request->container_id()));
}

grpc::Status RuntimeService::StopContainer(grpc::ServerContext*,
                                           const StopContainerRequest* request,
                                           StopContainerResponse*) {
  if (request->timeout() < 0) {
    return ToGrpcStatus(absl::InvalidArgumentError("stop timeout must not be negative"));
  }
  return ToGrpcStatus(
      runtime_.StopContainer(request->container_id(), std::chrono::seconds(request->timeout())));
}

grpc::Status RuntimeService::RemoveContainer(grpc::ServerContext*,
                                             const RemoveContainerRequest* request,
                                             RemoveContainerResponse*) {
  return ToGrpcStatus(runtime_.RemoveContainer(request->container_id()));
}

grpc::Status RuntimeService::ListContainers(grpc::ServerContext*,
                                            const ListContainersRequest* request,
                                            ListContainersResponse* response) {
  const ContainerFilter& filter = request->filter();
  for (const runtime::Container& c : runtime_.ListContainers()) {
    if (!filter.id().empty() && !absl::StartsWith(c.id, filter.id())) continue;
    if (!filter.pod_sandbox_id().empty() && !absl::StartsWith(c.pod_id, filter.pod_sandbox_id())) {
      continue;
    }
    if (filter.has_state() && filter.state().state() != c.state) continue;
    if (!LabelsMatch(c.config.labels(), filter.label_selector())) continue;
    FillContainer(c, response->add_containers());
  }
  return grpc::Status::OK;
}

grpc::Status RuntimeService::StreamPodSandboxes(
    grpc::ServerContext* context, const StreamPodSandboxesRequest* request,
    grpc::ServerWriter<StreamPodSandboxesResponse>* writer) {
  ListPodSandboxRequest list;
  *list.mutable_filter() = request->filter();
  ListPodSandboxResponse listed;
  if (grpc::Status status = ListPodSandbox(context, &list, &listed); !status.ok()) return status;
  return SendInChunks<StreamPodSandboxesResponse>(
      writer, *listed.mutable_items(),
      [](StreamPodSandboxesResponse& r) { return r.mutable_pod_sandboxes(); });
}

grpc::Status RuntimeService::StreamContainers(
    grpc::ServerContext* context, const StreamContainersRequest* request,
    grpc::ServerWriter<StreamContainersResponse>* writer) {
  ListContainersRequest list;
  *list.mutable_filter() = request->filter();
  ListContainersResponse listed;
  if (grpc::Status status = ListContainers(context, &list, &listed); !status.ok()) return status;
  return SendInChunks<StreamContainersResponse>(
      writer, *listed.mutable_containers(),
      [](StreamContainersResponse& r) { return r.mutable_containers(); });
}

grpc::Status RuntimeService::ContainerStatus(grpc::ServerContext*,
                                             const ContainerStatusRequest* request,
                                             ContainerStatusResponse* response) {
  absl::StatusOr<runtime::Container> c = runtime_.GetContainer(request->container_id());
  if (!c.ok()) return ToGrpcStatus(c.status());
  FillContainerStatus(*c, response->mutable_status());
  if (request->verbose()) {
    nlohmann::json info = {{"sandboxID", c->pod_id},
                           {"bundle", c->bundle},
                           {"shimPid", c->shim_pid},
                           {"snapshotKey", c->snapshot_key}};
    (*response->mutable_info())["info"] = info.dump();
  }
  return grpc::Status::OK;
}

grpc::Status RuntimeService::ExecSync(grpc::ServerContext*, const ExecSyncRequest* request,
                                      ExecSyncResponse* response) {
  if (request->timeout() < 0) {
    return ToGrpcStatus(absl::InvalidArgumentError("exec timeout must not be negative"));
  }
  std::vector<std::string> cmd(request->cmd().begin(), request->cmd().end());
  absl::StatusOr<runtime::ExecResult> result =
      runtime_.ExecSync(request->container_id(), cmd, std::chrono::seconds(request->timeout()));
  if (!result.ok()) return ToGrpcStatus(result.status());
  response->set_stdout(result->output);
  response->set_stderr(result->errors);
  response->set_exit_code(result->exit_code);
  return grpc::Status::OK;
}

grpc::Status RuntimeService::UpdateContainerResources(
    grpc::ServerContext*, const UpdateContainerResourcesRequest* request,
    UpdateContainerResourcesResponse*) {
  if (!request->has_linux()) {
    return ToGrpcStatus(absl::InvalidArgumentError("UpdateContainerResources: no linux resources"));
  }
  return ToGrpcStatus(runtime_.UpdateContainerResources(request->container_id(), request->linux()));
}

grpc::Status RuntimeService::UpdatePodSandboxResources(
    grpc::ServerContext*, const UpdatePodSandboxResourcesRequest* request,
    UpdatePodSandboxResourcesResponse*) {
  return ToGrpcStatus(runtime_.UpdatePodResources(request->pod_sandbox_id(), request->overhead(),
                                                  request->resources()));
}

grpc::Status RuntimeService::GetContainerEvents(
    grpc::ServerContext* context, const GetEventsRequest*,
    grpc::ServerWriter<ContainerEventResponse>* writer) {
  std::unique_ptr<runtime::NodeEvents::Subscription> subscription = runtime_.SubscribeEvents();
  while (!context->IsCancelled()) {
    // A bounded wait, so that a client gone quiet is noticed (IsCancelled) within a second.
    absl::StatusOr<std::shared_ptr<const runtime::NodeEvent>> next =
        subscription->Next(std::chrono::seconds(1));
    if (!next.ok()) return ToGrpcStatus(next.status());
    if (*next == nullptr) continue;
    const runtime::NodeEvent& event = **next;
    ContainerEventResponse response;
    response.set_container_id(event.container_id);
    response.set_container_event_type(CriEventType(event.change));
    response.set_created_at(event.at);
    // No pod: a container's event raced with its pod's removal; kubelet skips such events
    // (the pod's own DELETED event has told it).
    if (event.pod.has_value()) {
      FillPodSandboxStatus(*event.pod, response.mutable_pod_sandbox_status());
    }
    for (const runtime::Container& c : event.containers) {
      FillContainerStatus(c, response.add_containers_statuses());
    }
    if (!writer->Write(response)) break;  // the client went away
  }
  return grpc::Status::OK;
}

grpc::Status RuntimeService::CheckpointContainer(grpc::ServerContext*,
                                                 const CheckpointContainerRequest* request,
                                                 CheckpointContainerResponse*) {
  return ToGrpcStatus(runtime_.CheckpointContainer(request->container_id(), request->location()));
}

grpc::Status RuntimeService::ReopenContainerLog(grpc::ServerContext*,
                                                const ReopenContainerLogRequest* request,
                                                ReopenContainerLogResponse*) {
  return ToGrpcStatus(runtime_.ReopenContainerLog(request->container_id()));
}

}  // namespace kapal::cri
