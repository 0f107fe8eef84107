#pragma once

// The CRI v1 gRPC services (RuntimeService, ImageService) with their messages: for the CRI front
// door, clients (kapalctl), tests and benchmarks. The runtime core includes api/cri_messages.h.
#include "api/cri_messages.h"
// The messages header above is read first, with the signal macros set aside.
#include "api/cri.grpc.pb.h"  // IWYU pragma: export
