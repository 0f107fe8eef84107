#pragma once

#include <grpcpp/support/server_interceptor.h>

#include "base/logger.h"
#include "metrics/metrics.h"

namespace kapal::cri {

// A gRPC server interceptor on every call: counts it and times it (kapal_grpc_* metrics), logs it
// at debug (failures at warn when the fault is ours), and gives an UNIMPLEMENTED status the name
// of the rpc, since gRPC's generated default says nothing a person can act on.
class RpcObserverFactory : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  RpcObserverFactory(metrics::RpcMetrics& metrics, base::Logger& logger)
      : metrics_(metrics), logger_(logger) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  metrics::RpcMetrics& metrics_;
  base::Logger& logger_;
};

}  // namespace kapal::cri
