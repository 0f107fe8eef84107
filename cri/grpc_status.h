#pragma once

#include <grpcpp/support/status.h>

#include "absl/status/status.h"

namespace kapal::cri {

// The one place where a component's absl::Status becomes what the client sees. The canonical
// codes are the same numbers in both.
grpc::Status ToGrpcStatus(const absl::Status& status);

}  // namespace kapal::cri
