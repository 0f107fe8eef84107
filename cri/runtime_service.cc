#include "cri/runtime_service.h"

#include <arpa/inet.h>

#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/build_info.h"
#include "cri/grpc_status.h"
#include "cri/readiness.h"

namespace kapal::cri {

namespace {

constexpr char kPodCidrSetting[] = "pod_cidr";
// CRI's own version string, which kubelet and crictl print as "Version"; containerd and CRI-O
// answer the same.
constexpr char kCriVersion[] = "0.1.0";

void AddCondition(runtime::v1::RuntimeStatus* status, const char* type,
                  const Condition& condition) {
  runtime::v1::RuntimeCondition* added = status->add_conditions();
  added->set_type(type);
  added->set_status(condition.ready);
  added->set_reason(condition.reason);
  added->set_message(condition.message);
}

}  // namespace

absl::Status ValidatePodCidrs(absl::string_view cidrs) {
  if (cidrs.empty()) return absl::OkStatus();
  bool seen_v4 = false, seen_v6 = false;
  for (absl::string_view cidr : absl::StrSplit(cidrs, ',')) {
    size_t slash = cidr.find('/');
    int bits = -1;
    if (slash == absl::string_view::npos || !absl::SimpleAtoi(cidr.substr(slash + 1), &bits)) {
      return absl::InvalidArgumentError(
          absl::StrCat("pod CIDR \"", cidr, "\" is not ADDRESS/BITS (example: 10.88.0.0/16)"));
    }
    std::string address(cidr.substr(0, slash));
    unsigned char buffer[sizeof(in6_addr)];
    if (inet_pton(AF_INET, address.c_str(), buffer) == 1) {
      if (bits < 0 || bits > 32 || seen_v4) {
        return absl::InvalidArgumentError(absl::StrCat(
            "pod CIDR \"", cidr, "\": ", seen_v4 ? "a second IPv4 range" : "bits must be 0 to 32"));
      }
      seen_v4 = true;
    } else if (inet_pton(AF_INET6, address.c_str(), buffer) == 1) {
      if (bits < 0 || bits > 128 || seen_v6) {
        return absl::InvalidArgumentError(
            absl::StrCat("pod CIDR \"", cidr,
                         "\": ", seen_v6 ? "a second IPv6 range" : "bits must be 0 to 128"));
      }
      seen_v6 = true;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("pod CIDR \"", cidr, "\": \"", address, "\" is not an IP address"));
    }
  }
  return absl::OkStatus();
}

RuntimeService::RuntimeService(const Config& config, const HostFacts& host, store::Store& store,
                               PodRuntime& pods, std::string metrics_address, base::Logger& logger)
    : config_(config),
      host_(host),
      store_(store),
      pods_(pods),
      metrics_address_(std::move(metrics_address)),
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
  AddCondition(status, "RuntimeReady", CheckRuntimeReady(config_));
  AddCondition(status, "NetworkReady", CheckNetworkReady(config_));
  // Kubelet reads the handler named "" as the default one.
  response->add_runtime_handlers()->set_name("");
  for (const auto& [name, handler] : config_.runtimes) {
    response->add_runtime_handlers()->set_name(name);
  }
  if (request->verbose()) {
    absl::StatusOr<std::optional<std::string>> pod_cidr = store_.GetSetting(kPodCidrSetting);
    if (!pod_cidr.ok()) return ToGrpcStatus(pod_cidr.status());
    // crictl info prints each value parsed as JSON, so every value is a JSON document.
    auto& info = *response->mutable_info();
    info["config"] = ConfigToJson(config_).dump();
    info["host"] = HostFactsToJson(host_).dump();
    info["runtime"] =
        nlohmann::json{
            {"version", base::kVersion},
            {"commit", base::kGitCommit},
            {"cgroupDriver", CgroupDriverName(ResolveCgroupDriver(config_.cgroup_driver, host_))},
            {"podCIDR", pod_cidr->value_or("")},
            {"metricsAddress", metrics_address_},
            {"database", store_.Path()},
            {"schemaVersion", store_.SchemaVersion()},
            {"pods", pods_.Describe()},
        }
            .dump();
  }
  return grpc::Status::OK;
}

grpc::Status RuntimeService::RuntimeConfig(grpc::ServerContext*,
                                           const runtime::v1::RuntimeConfigRequest*,
                                           runtime::v1::RuntimeConfigResponse* response) {
  CgroupDriver driver = ResolveCgroupDriver(config_.cgroup_driver, host_);
  response->mutable_linux()->set_cgroup_driver(driver == CgroupDriver::kSystemd
                                                   ? runtime::v1::CgroupDriver::SYSTEMD
                                                   : runtime::v1::CgroupDriver::CGROUPFS);
  return grpc::Status::OK;
}

grpc::Status RuntimeService::UpdateRuntimeConfig(
    grpc::ServerContext*, const runtime::v1::UpdateRuntimeConfigRequest* request,
    runtime::v1::UpdateRuntimeConfigResponse*) {
  const std::string& pod_cidr = request->runtime_config().network_config().pod_cidr();
  if (absl::Status valid = ValidatePodCidrs(pod_cidr); !valid.ok()) return ToGrpcStatus(valid);
  // Kubelet sends an empty CIDR until the node has one; that must not erase a known one.
  if (pod_cidr.empty()) return grpc::Status::OK;
  if (absl::Status stored = store_.PutSetting(kPodCidrSetting, pod_cidr); !stored.ok()) {
    return ToGrpcStatus(stored);
  }
  logger_.Info("pod CIDR set to ", pod_cidr);
  return grpc::Status::OK;
}

}  // namespace kapal::cri
