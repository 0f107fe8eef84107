#include "absl/strings/str_cat.h"
#include "cri/grpc_status.h"
#include "cri/runtime_service.h"

// Exec, Attach and PortForward: the request is checked and its target looked up here (so a bad
// one fails in the rpc, with its code, not later on the stream), then the streaming server gives
// a URL with a single-use token for it.
namespace kapal::cri {

using runtime::v1::AttachRequest;
using runtime::v1::AttachResponse;
using runtime::v1::ExecRequest;
using runtime::v1::ExecResponse;
using runtime::v1::PortForwardRequest;
using runtime::v1::PortForwardResponse;

namespace {

absl::Status StreamingOff() {
  return absl::FailedPreconditionError(
      "the streaming server is off (kapald's [streaming] address is empty)");
}

// Containerd's rules for a stream request's channels.
absl::Status CheckChannels(bool in, bool out, bool err, bool tty) {
  if (!in && !out && !err) {
    return absl::InvalidArgumentError("one of stdin, stdout and stderr must be asked for");
  }
  if (tty && err) {
    return absl::InvalidArgumentError(
        "tty and stderr cannot both be true: a terminal carries both outputs");
  }
  return absl::OkStatus();
}

// The container ID names, when it runs (VERB: "exec", "attach").
absl::StatusOr<runtime::Container> RunningContainer(runtime::Runtime& runtime,
                                                    const std::string& id, const char* verb) {
  absl::StatusOr<runtime::Container> container = runtime.GetContainer(id);
  if (!container.ok()) return container.status();
  if (container->state != runtime::v1::CONTAINER_RUNNING) {
    return absl::FailedPreconditionError(absl::StrCat(
        "container ", container->id, " is not running; ", verb, " needs a running one"));
  }
  return container;
}

}  // namespace

grpc::Status RuntimeService::Exec(grpc::ServerContext*, const ExecRequest* request,
                                  ExecResponse* response) {
  if (streaming_ == nullptr) return ToGrpcStatus(StreamingOff());
  if (request->cmd().empty()) {
    return ToGrpcStatus(absl::InvalidArgumentError("exec needs a command"));
  }
  if (absl::Status checked =
          CheckChannels(request->stdin(), request->stdout(), request->stderr(), request->tty());
      !checked.ok()) {
    return ToGrpcStatus(checked);
  }
  absl::StatusOr<runtime::Container> container =
      RunningContainer(runtime_, request->container_id(), "exec");
  if (!container.ok()) return ToGrpcStatus(container.status());
  streaming::ExecSession session;
  session.container_id = container->id;
  session.options.cmd.assign(request->cmd().begin(), request->cmd().end());
  session.options.tty = request->tty();
  session.options.stdin = request->stdin();
  session.options.stdout = request->stdout();
  session.options.stderr = request->stderr();
  response->set_url(streaming_->ExecUrl(std::move(session)));
  return grpc::Status::OK;
}

grpc::Status RuntimeService::Attach(grpc::ServerContext*, const AttachRequest* request,
                                    AttachResponse* response) {
  if (streaming_ == nullptr) return ToGrpcStatus(StreamingOff());
  if (absl::Status checked =
          CheckChannels(request->stdin(), request->stdout(), request->stderr(), request->tty());
      !checked.ok()) {
    return ToGrpcStatus(checked);
  }
  absl::StatusOr<runtime::Container> container =
      RunningContainer(runtime_, request->container_id(), "attach");
  if (!container.ok()) return ToGrpcStatus(container.status());
  if (request->stdin() && !container->config.stdin()) {
    return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
        "container ", container->id, " was created without stdin; attach cannot give it one")));
  }
  streaming::AttachSession session;
  session.container_id = container->id;
  session.stdin = request->stdin();
  session.stdout = request->stdout();
  session.stderr = request->stderr();
  // The container's terminal decides how its output comes (one stream), whatever was asked.
  session.tty = container->config.tty();
  if (session.tty) session.stderr = false;
  response->set_url(streaming_->AttachUrl(std::move(session)));
  return grpc::Status::OK;
}

grpc::Status RuntimeService::PortForward(grpc::ServerContext*, const PortForwardRequest* request,
                                         PortForwardResponse* response) {
  if (streaming_ == nullptr) return ToGrpcStatus(StreamingOff());
  absl::StatusOr<runtime::Pod> pod = runtime_.GetPod(request->pod_sandbox_id());
  if (!pod.ok()) return ToGrpcStatus(pod.status());
  if (!pod->ready) {
    return ToGrpcStatus(absl::FailedPreconditionError(
        absl::StrCat("pod ", pod->id, " is not ready; port forwarding needs a running pod")));
  }
  streaming::PortForwardSession session;
  session.pod_id = pod->id;
  for (int32_t port : request->port()) {
    if (port <= 0 || port > 65535) {
      return ToGrpcStatus(
          absl::InvalidArgumentError(absl::StrCat("port ", port, " is not 1-65535")));
    }
    session.ports.push_back(static_cast<uint16_t>(port));
  }
  response->set_url(streaming_->PortForwardUrl(std::move(session)));
  return grpc::Status::OK;
}

}  // namespace kapal::cri
