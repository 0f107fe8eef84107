#include "runtime/recovery.h"

#include <sys/mount.h>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "runtime/container_mounts.h"
#include "runtime/namespaces.h"
#include "shim/exit_file.h"

namespace kapal::runtime {

namespace {

// The process user of the container's config.json; nullopt when the bundle is gone.
std::optional<ProcessUser> SpecUser(const std::string& bundle) {
  absl::StatusOr<std::string> text = base::ReadFile(bundle + "/config.json");
  if (!text.ok()) return std::nullopt;
  nlohmann::json spec = nlohmann::json::parse(*text, nullptr, false);
  if (!spec.is_object() || !spec.contains("process") || !spec["process"].contains("user")) {
    return std::nullopt;
  }
  const nlohmann::json& user = spec["process"]["user"];
  ProcessUser parsed;
  parsed.uid = user.value("uid", 0u);
  parsed.gid = user.value("gid", 0u);
  if (user.contains("additionalGids") && user["additionalGids"].is_array()) {
    parsed.additional_gids = user["additionalGids"].get<std::vector<uint32_t>>();
  }
  return parsed;
}

}  // namespace

absl::Status Recovery::Run() {
  std::lock_guard lock(state_.mutex);
  std::vector<Pod> pods;
  std::vector<Container> containers;
  if (absl::Status read = records_.LoadAll(pods, containers); !read.ok()) return read;
  for (Pod& pod : pods) {
    // A reboot (or a state dir on tmpfs that was emptied) takes the namespaces with it.
    if (pod.ready && pod.own.network && !IsMountPoint(pod.dir + "/net")) {
      logger_.Warn("pod ", pod.id, ": its network namespace is gone; marking it not ready");
      pod.ready = false;
      if (absl::Status saved = records_.SavePod(pod); !saved.ok()) return saved;
    }
    state_.pods[pod.id] = std::move(pod);
  }
  for (Container& c : containers) {
    if (c.shim_pid == 0) {
      absl::StatusOr<std::string> shim_pid = base::ReadFile(c.bundle + "/" + shim::kShimPidFile);
      if (!shim_pid.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*shim_pid), &c.shim_pid)) {
        // kapald died before the shim started: CreateContainer never answered; undo it.
        logger_.Warn("container ", c.id, ": its creation was cut short; removing it");
        if (absl::Status cleaned = containers_.CleanUpLocked(c); !cleaned.ok()) return cleaned;
        if (absl::Status deleted = records_.DeleteContainer(c.id); !deleted.ok()) return deleted;
        continue;
      }
    }
    c.user = SpecUser(c.bundle);
    exits_.RefreshLocked(c);
    // Docker's pause lives in the freezer, not in the record: read it back.
    if (c.state == runtime::v1::CONTAINER_RUNNING) c.paused = containers_.FrozenLocked(c);
    state_.containers[c.id] = std::move(c);
  }
  // A crash between creating a pod's or container's files and recording it leaves files no
  // record names: remove them.
  for (const char* kind : {"pods", "containers"}) {
    std::string dir = absl::StrCat(options_.state_dir, "/", kind);
    absl::StatusOr<std::vector<std::string>> entries = base::ListDirectory(dir);
    if (!entries.ok()) continue;
    for (const std::string& name : *entries) {
      bool known = std::string(kind) == "pods" ? state_.pods.count(name) > 0
                                               : state_.containers.count(name) > 0;
      if (known) continue;
      std::string path = absl::StrCat(dir, "/", name);
      logger_.Warn("removing ", path, ": left by a crash, no record names it");
      if (std::string(kind) == "pods") {
        sandboxes_.CleanUpUnrecorded(name);
      } else {
        for (const Handler* handler : handlers_.All()) (void)handler->runtime.Delete(name);
        std::string snapshot_key = kContainerSnapshotPrefix + name;
        if (absl::Status unmounted = UnmountBundle(snapshots_, path, snapshot_key);
            !unmounted.ok()) {
          logger_.Warn("container ", name, " left by a crash: ", unmounted.message(),
                       "; its bundle stays");
          continue;
        }
        (void)snapshots_.Remove(snapshot_key);
      }
      (void)base::RemoveTree(path);
    }
  }
  logger_.Info("recovered ", state_.pods.size(), " pods and ", state_.containers.size(),
               " containers");
  return absl::OkStatus();
}

}  // namespace kapal::runtime
