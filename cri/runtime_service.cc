#include "cri/runtime_service.h"

#include "base/build_info.h"
#include "cri/grpc_status.h"

namespace kapal::cri {

namespace {

// CRI's own version string, which kubelet and crictl print as "Version"; containerd and CRI-O
// answer the same.
constexpr char kCriVersion[] = "0.1.0";

void AddCondition(runtime::v1::RuntimeStatus* status, const char* type,
                  const runtime::Condition& condition) {
  runtime::v1::RuntimeCondition* added = status->add_conditions();
  added->set_type(type);
  added->set_status(condition.ready);
  added->set_reason(condition.reason);
  added->set_message(condition.message);
}

}  // namespace

RuntimeService::RuntimeService(runtime::Runtime& runtime, nlohmann::json config_json,
                               std::string metrics_address, streaming::Server* streaming,
                               base::Logger& logger)
    : runtime_(runtime),
      config_json_(std::move(config_json)),
      metrics_address_(std::move(metrics_address)),
      streaming_(streaming),
      logger_(logger) {}

grpc::Status RuntimeService::Version(grpc::ServerContext*, const runtime::v1::VersionRequest*,
                                     runtime::v1::VersionResponse* response) {
  response->set_version(kCriVersion);
  response->set_runtime_name("kapal");
  response->set_runtime_version(base::kVersion);
  response->set_runtime_api_version("v1");
  return grpc::Status::OK;
}

grpc::Status RuntimeService::Status(grpc::ServerContext*, const runtime::v1::StatusRequest* request,
                                    runtime::v1::StatusResponse* response) {
  runtime::v1::RuntimeStatus* status = response->mutable_status();
  AddCondition(status, "RuntimeReady", runtime_.RuntimeReady());
  AddCondition(status, "NetworkReady", runtime_.NetworkReady());
  // The Merge and Strict supplemental groups policies (KEP-3619), for every handler.
  response->mutable_features()->set_supplemental_groups_policy(true);
  // Kubelet reads the handler named "" as the default one.
  std::vector<std::string> names = runtime_.HandlerNames();
  names.insert(names.begin(), "");
  for (const std::string& name : names) {
    runtime::v1::RuntimeHandler* handler = response->add_runtime_handlers();
    handler->set_name(name);
    runtime::HandlerFeatures features = runtime_.FeaturesOf(name);
    handler->mutable_features()->set_recursive_read_only_mounts(features.recursive_read_only);
    handler->mutable_features()->set_user_namespaces(features.user_namespaces);
  }
  if (request->verbose()) {
    absl::StatusOr<std::string> pod_cidr = runtime_.PodCidr();
    if (!pod_cidr.ok()) return ToGrpcStatus(pod_cidr.status());
    // crictl info prints each value parsed as JSON, so every value is a JSON document.
    auto& info = *response->mutable_info();
    info["config"] = config_json_.dump();
    info["host"] = runtime::HostFactsToJson(runtime_.host()).dump();
    nlohmann::json described = runtime_.Describe();
    described["version"] = base::kVersion;
    described["commit"] = base::kGitCommit;
    described["cgroupDriver"] = runtime::CgroupDriverName(runtime_.cgroup_driver());
    described["podCIDR"] = *pod_cidr;
    described["metricsAddress"] = metrics_address_;
    info["runtime"] = described.dump();
  }
  return grpc::Status::OK;
}

grpc::Status RuntimeService::RuntimeConfig(grpc::ServerContext*,
                                           const runtime::v1::RuntimeConfigRequest*,
                                           runtime::v1::RuntimeConfigResponse* response) {
  response->mutable_linux()->set_cgroup_driver(runtime_.cgroup_driver() ==
                                                       runtime::CgroupDriver::kSystemd
                                                   ? runtime::v1::CgroupDriver::SYSTEMD
                                                   : runtime::v1::CgroupDriver::CGROUPFS);
  return grpc::Status::OK;
}

grpc::Status RuntimeService::UpdateRuntimeConfig(
    grpc::ServerContext*, const runtime::v1::UpdateRuntimeConfigRequest* request,
    runtime::v1::UpdateRuntimeConfigResponse*) {
  const std::string& pod_cidr = request->runtime_config().network_config().pod_cidr();
  if (absl::Status stored = runtime_.SetPodCidr(pod_cidr); !stored.ok()) {
    return ToGrpcStatus(stored);
  }
  if (pod_cidr.empty()) return grpc::Status::OK;
  logger_.Info("pod CIDR set to ", pod_cidr);
  return grpc::Status::OK;
}

}  // namespace kapal::cri
