#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/cri_messages.h"
#include "nlohmann/json.hpp"

// A Docker container is a kapal pod with one container. This turns the body of Docker's
// POST /containers/create into the CRI configs of that pod and container, so every rule of the
// core (security defaults, users, cleanup) applies to it as to a kubelet's pod; the body itself
// is kept on the container (kCreateAnnotation) for inspect.
namespace kapal::docker {

// Pods made for the Docker API live in this namespace and carry kDockerLabel.
inline constexpr char kPodNamespace[] = "docker";
inline constexpr char kDockerLabel[] = "io.kapal.docker";
// On the container: its Docker name (without the leading '/') and the create body.
inline constexpr char kNameAnnotation[] = "io.kapal.docker.name";
inline constexpr char kCreateAnnotation[] = "io.kapal.docker.create";
// How often the restart policy restarted it since it was last started by hand, and whether it
// was stopped by hand (docker stop / kill): such a container is not restarted by its policy.
inline constexpr char kRestartCountAnnotation[] = "io.kapal.docker.restart-count";
inline constexpr char kStoppedByUserAnnotation[] = "io.kapal.docker.stopped-by-user";

// What a translation needs from the node.
struct TranslateContext {
  std::string image_id;  // the image, resolved ("sha256:...")
  std::string image_reference;
  // The host directory of named volume NAME (made when missing, as Docker does).
  std::function<absl::StatusOr<std::string>(const std::string& name)> volume_path;
  // Whether NAME is a network the node has (Docker's --network NAME).
  std::function<bool(const std::string& name)> network_exists;
  // A free TCP port on the host, for a published port without a host port ("-p 80").
  std::function<absl::StatusOr<int>()> free_port;
};

struct Translated {
  runtime::v1::PodSandboxConfig pod;
  runtime::v1::ContainerConfig container;
  std::vector<std::string> warnings;
};

// BODY is the request's JSON (Config with HostConfig and NetworkingConfig inside), NAME the
// container's name. INVALID_ARGUMENT, naming the field, for what is malformed or what kapal
// cannot do (a restart policy, a device, a volume driver).
absl::StatusOr<Translated> TranslateCreate(const nlohmann::json& body, const std::string& name,
                                           const TranslateContext& context);

// Docker's rule for names: [a-zA-Z0-9][a-zA-Z0-9_.-]+ (a leading '/' is dropped first).
absl::StatusOr<std::string> CheckContainerName(const std::string& name);
// A name for a container created without one: an adjective, a scientist and 4 hex digits.
std::string GenerateContainerName();

// Docker's `-v` forms: NAME:/path[:ro], /host:/path[:ro|rw]. Named volumes give kind "volume".
struct VolumeMount {
  std::string kind;  // "bind" or "volume"
  std::string source;
  std::string destination;
  bool read_only = false;
};
absl::StatusOr<VolumeMount> ParseBind(const std::string& text);
// The volume and bind mounts of a create body (Binds and Mounts).
absl::StatusOr<std::vector<VolumeMount>> MountsOf(const nlohmann::json& body);

}  // namespace kapal::docker
