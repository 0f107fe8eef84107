#pragma once

// ctl: kapalctl, a crictl-compatible client with Docker-style verbs. It talks to kapald only
// over its sockets (CRI and kapal.v1), never by linking the core.

#include <memory>
#include <ostream>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "api/cri_services.h"
#include "api/kapal.grpc.pb.h"
#include "ctl/client_config.h"
#include "ctl/output.h"

namespace kapal::ctl {

// Connections to the runtime and image endpoints, with the per-call deadline of --timeout.
class CriClient {
 public:
  // Fails with UNAVAILABLE, naming the endpoint, when nothing answers within the timeout.
  static absl::StatusOr<std::unique_ptr<CriClient>> Connect(const ClientConfig& config);

  runtime::v1::RuntimeService::Stub& Runtime() { return *runtime_; }
  runtime::v1::ImageService::Stub& Images() { return *images_; }
  // kapal's own API on the image endpoint; other runtimes answer UNIMPLEMENTED.
  kapal::v1::Images::Stub& KapalImages() { return *kapal_images_; }
  kapal::v1::Builds::Stub& KapalBuilds() { return *kapal_builds_; }
  // kapal's own container verbs (pause, top, cp, export) on the runtime endpoint.
  kapal::v1::Containers::Stub& KapalContainers() { return *kapal_containers_; }
  // A context whose deadline is the configured timeout from now.
  std::unique_ptr<grpc::ClientContext> NewContext() const;
  // A context without the short --timeout, for work that takes long (pulls).
  std::unique_ptr<grpc::ClientContext> LongContext() const;
  bool Debug() const { return config_.debug; }

 private:
  explicit CriClient(ClientConfig config) : config_(std::move(config)) {}
  ClientConfig config_;
  std::unique_ptr<runtime::v1::RuntimeService::Stub> runtime_;
  std::unique_ptr<runtime::v1::ImageService::Stub> images_;
  std::unique_ptr<kapal::v1::Images::Stub> kapal_images_;
  std::unique_ptr<kapal::v1::Builds::Stub> kapal_builds_;
  std::unique_ptr<kapal::v1::Containers::Stub> kapal_containers_;
};

// A failed call as the user should see it: "Version: NOT_FOUND: message".
absl::Status RpcError(absl::string_view rpc, const grpc::Status& status);

// `kapalctl version`: like crictl's "Version: ..." lines for table, or the message as json/yaml.
absl::Status RunVersion(CriClient& client, OutputFormat format, std::ostream& out);

// `kapalctl info`: runtime conditions, handlers and the daemon's verbose info (config, host,
// runtime), like crictl info; table prints the conditions and a few key facts.
absl::Status RunInfo(CriClient& client, OutputFormat format, std::ostream& out);

}  // namespace kapal::ctl
