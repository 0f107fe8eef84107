#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "images/registry_hosts.h"
#include "nlohmann/json.hpp"
#include "runtime/options.h"

namespace kapal::daemon {

inline constexpr const char kDefaultConfigPath[] = "/etc/kapal/kapal.toml";

using runtime::CgroupDriverSetting;
using runtime::RuntimeHandler;
enum class SnapshotterSetting { kAuto, kOverlay, kNative };

// Everything kapald reads from kapal.toml: what the node core takes (runtime::Options: root,
// state, cgroup driver, handlers, shim, CNI) and what only the daemon uses. Every field has a
// default, so no file is needed.
struct Config : runtime::Options {
  std::string log_level = "info";
  std::string socket_path = "/run/kapal/kapal.sock";
  // HOST:PORT for the Prometheus endpoint; empty turns it off. Loopback only by default: metrics
  // reveal pod and image names.
  std::string metrics_address = "127.0.0.1:9754";
  // HOST:PORT of the streaming server (exec, attach, port-forward URLs). Loopback on a free port
  // by default, as containerd: kubelet on the same node reaches it, nobody else. Empty: off.
  std::string streaming_address = "127.0.0.1:0";
  // HTTPS for the streaming server, as containerd's enable_tls_streaming: with the key pair
  // given, or a self-signed certificate made at start when both files are empty.
  bool streaming_tls = false;
  std::string streaming_tls_cert_file;
  std::string streaming_tls_key_file;
  // The Docker Engine API's unix socket (docker/); empty turns it off. Root-equivalent.
  std::string docker_address = "/run/kapal/docker.sock";
  // A group (name) that may use the Docker socket besides root; empty: root only.
  std::string docker_group;
  // The Docker API on TCP too (HOST:PORT, as dockerd's -H tcp://): only with mutual TLS (the
  // server's key pair and the CA that signs clients' certificates, dockerd's --tlsverify), or
  // plain when explicitly allowed and the host is a loopback address.
  std::string docker_tcp_address;
  std::string docker_tls_cert;
  std::string docker_tls_key;
  std::string docker_tls_ca;
  bool docker_allow_plain_tcp = false;
  // auto: overlay where the kernel and root filesystem allow it, else native copies.
  SnapshotterSetting snapshotter = SnapshotterSetting::kAuto;
  // Where containers' writable layers live; empty: with the images under root. Another
  // filesystem splits the image filesystem from the containers' (KEP-4191).
  std::string writable_layers_dir;
  int max_concurrent_downloads = 3;
  // A pull whose transfers move no byte for this long is cancelled (DEADLINE_EXCEEDED), as
  // containerd's image_pull_progress_timeout; zero: no limit.
  std::chrono::seconds pull_progress_timeout{300};
  // Unpack each layer while it downloads (overlay), reading its blob file behind the download;
  // off: after its blob is committed.
  bool unpack_while_downloading = true;
  // Fetch layers of 64 MiB and more as 4 parallel byte ranges where the registry serves them.
  bool parallel_ranges = true;
  // Sync each layer's unpacked tree before its commit (one syncfs per layer). Off: the commit
  // does not wait for the tree's writeback (its blob is fsynced and unpacks it again should
  // the machine crash first); a background syncfs follows 10 s after, once no pull writes.
  bool sync_layers_at_commit = false;
  // Per registry host ("registry.k8s.io", "127.0.0.1:5000"): mirrors, TLS, credentials.
  std::map<std::string, images::RegistryHostSettings> registries;

  bool operator==(const Config&) const = default;
};

// Parses kapal.toml text. SOURCE names the file in error messages. Every error names the key
// (and line) at fault; all errors found are reported together, one per line.
absl::StatusOr<Config> ParseConfig(absl::string_view toml_text, absl::string_view source);

// Reads PATH. A missing file gives the defaults unless MUST_EXIST (an explicit --config).
absl::StatusOr<Config> LoadConfig(const std::string& path, bool must_exist);

// The configuration as a TOML file with a comment on every key; for Config{} this is what
// `kapald --print-default-config` prints.
std::string RenderConfig(const Config& config);

// The configuration as JSON, with registry passwords replaced by "<redacted>": Status verbose
// and kapalctl info show it to anyone who can reach the socket's logs.
nlohmann::json ConfigToJson(const Config& config);

absl::string_view CgroupDriverSettingName(CgroupDriverSetting setting);
absl::string_view SnapshotterSettingName(SnapshotterSetting setting);

}  // namespace kapal::daemon
