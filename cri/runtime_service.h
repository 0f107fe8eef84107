#pragma once

#include <string>

#include "base/logger.h"
#include "cri/config.h"
#include "cri/host_facts.h"
#include "cri/proto/cri_api.h"
#include "store/store.h"

namespace kapal::cri {

// The runtime.v1.RuntimeService of kapald. RPCs not overridden here answer UNIMPLEMENTED.
class RuntimeService final : public runtime::v1::RuntimeService::Service {
 public:
  RuntimeService(const Config& config, const HostFacts& host, store::Store& store,
                 std::string metrics_address, base::Logger& logger);

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

 private:
  const Config& config_;
  const HostFacts& host_;
  store::Store& store_;
  std::string metrics_address_;
  base::Logger& logger_;
};

// Checks a pod CIDR list as kubelet sends it: "" (none yet) or comma-separated CIDRs, at most one
// per IP family ("10.88.0.0/16,fd00::/64").
absl::Status ValidatePodCidrs(absl::string_view cidrs);

}  // namespace kapal::cri
