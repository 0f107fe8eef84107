#pragma once

#include <functional>
#include <string>

#include "absl/status/status.h"

namespace kapal::runtime {

// Which namespaces of a pod are its own (the others are the host's).
struct PodNamespaces {
  bool network = true;
  bool ipc = true;
  bool uts = true;
  // One PID namespace for all containers of the pod, held by an infra process (kapal-shim
  // --infra); off, each container has its own.
  bool pid = false;
  // A user namespace of the pod's own (userns mode POD), pinned at DIR/user; it owns the
  // pod's other namespaces (see userns.h).
  bool user = false;
};

// Creates the pod's own namespaces and pins each with a bind mount at DIR/net, DIR/ipc and
// DIR/uts, so they live without any process in them (no pause container) and containers join
// them by path. The UTS namespace gets HOSTNAME; the network namespace's loopback is brought
// up. On failure nothing is left mounted.
absl::Status PinNamespaces(const std::string& dir, const PodNamespaces& which,
                           const std::string& hostname);

// Pins the PID namespace of process INFRA_PID at DIR/pid.
absl::Status PinPidNamespace(const std::string& dir, int infra_pid);

// True when process PID is in the PID namespace pinned at DIR/pid (so it is the pod's infra
// process, not another that got its pid after a reboot or a crash).
bool InPinnedPidNamespace(const std::string& dir, int pid);

// Unmounts and removes the pins under DIR (user, net, ipc, uts, pid); pins already gone are
// fine (idempotent).
absl::Status UnpinNamespaces(const std::string& dir);

// Runs WORK on a short-lived thread that has entered the network namespace pinned at
// NETNS_PATH (only that thread: the daemon stays in its own). Sockets WORK makes belong to the
// pod's namespace, and stay there when other threads use them.
absl::Status InNetworkNamespace(const std::string& netns_path, const std::function<void()>& work);

// True when PATH is a mount point (a pinned namespace, a mounted rootfs, the pod's /dev/shm).
bool IsMountPoint(const std::string& path);

}  // namespace kapal::runtime
