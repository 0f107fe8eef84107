#include "cri/readiness.h"

#include "absl/strings/str_cat.h"
#include "base/files.h"
#include "cri/cni.h"

namespace kapal::cri {

namespace {

constexpr char kNetworkNotReady[] = "NetworkPluginNotReady";

}  // namespace

Condition CheckRuntimeReady(const Config& config) {
  const RuntimeHandler& handler = config.runtimes.at(config.default_runtime);
  absl::StatusOr<std::string> binary = base::FindExecutable(handler.binary);
  if (!binary.ok()) {
    return {false, "OCIRuntimeNotFound",
            absl::StrCat("OCI runtime of the default handler \"", config.default_runtime,
                         "\": ", binary.status().message(), "; install it or set runtime.handlers.",
                         config.default_runtime, ".binary")};
  }
  return {true, "", ""};
}

Condition CheckNetworkReady(const Config& config) {
  absl::StatusOr<CniNetwork> network = CniNetwork::Load(config.cni_conf_dir, config.cni_bin_dirs);
  if (absl::IsNotFound(network.status())) {
    return {false, kNetworkNotReady,
            absl::StrCat("cni config uninitialized: ", network.status().message())};
  }
  if (!network.ok()) {
    return {false, kNetworkNotReady,
            absl::StrCat("cni config invalid: ", network.status().message())};
  }
  return {true, "", ""};
}

}  // namespace kapal::cri
