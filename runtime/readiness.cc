#include "runtime/readiness.h"

#include "absl/strings/str_cat.h"
#include "base/files.h"
#include "runtime/cni.h"

namespace kapal::runtime {

namespace {

constexpr char kNetworkNotReady[] = "NetworkPluginNotReady";

}  // namespace

Condition CheckRuntimeReady(const Options& options) {
  const RuntimeHandler& handler = options.runtimes.at(options.default_runtime);
  absl::StatusOr<std::string> binary = base::FindExecutable(handler.binary);
  if (!binary.ok()) {
    return {false, "OCIRuntimeNotFound",
            absl::StrCat("OCI runtime of the default handler \"", options.default_runtime,
                         "\": ", binary.status().message(), "; install it or set runtime.handlers.",
                         options.default_runtime, ".binary")};
  }
  return {true, "", ""};
}

Condition CheckNetworkReady(const Options& options) {
  absl::StatusOr<CniNetwork> network = CniNetwork::Load(options.cni_conf_dir, options.cni_bin_dirs);
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

}  // namespace kapal::runtime
