#pragma once

// User namespaces of pods (KEP-127, GA in Kubernetes 1.36): a pod with hostUsers: false runs
// all its containers in one user namespace with the id mappings kubelet picked, and its
// network, IPC, UTS and PID namespaces belong to that user namespace. Files keep their owners
// on disk: the image's layers and the volumes kubelet gives mappings for are seen through
// idmapped mounts (mount_setattr MOUNT_ATTR_IDMAP), never chowned. Debian bookworm's runc
// 1.1 has no idmap mount option, so kapald makes these mounts itself and hands runc paths that
// already are idmapped (a bind of an idmapped mount keeps its mapping).

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/cri_messages.h"
#include "base/unique_fd.h"
#include "snapshotter/snapshotter.h"

namespace kapal::runtime {

struct IdMap {
  uint32_t container_id = 0;
  uint32_t host_id = 0;
  uint32_t length = 0;
  bool operator==(const IdMap&) const = default;
};

struct IdMappings {
  std::vector<IdMap> uids;
  std::vector<IdMap> gids;
  bool operator==(const IdMappings&) const = default;
};

// The pod's user namespace as its config asks: nullopt for the host's (mode NODE, or no
// options), the mappings for mode POD. INVALID_ARGUMENT for modes CONTAINER and TARGET (a
// user namespace is a pod's, as in containerd and CRI-O), for POD without uid or gid mappings
// and for mappings that are empty, overflow or overlap.
absl::StatusOr<std::optional<IdMappings>> PodUserNamespace(
    const runtime::v1::PodSandboxConfig& config);

// The mappings of a mount (Mount.uidMappings/gidMappings), checked the same way; nullopt when
// the mount has none.
absl::StatusOr<std::optional<IdMappings>> MountIdMappings(const runtime::v1::Mount& mount);

// The host id that container id ID maps to; nullopt when ID is not mapped.
std::optional<uint32_t> HostIdOf(const std::vector<IdMap>& maps, uint32_t id);

// Which namespaces kapal-shim --namespaces makes besides the user namespace.
struct OwnedNamespaces {
  bool network = false;
  bool ipc = false;
  bool uts = false;
  std::string hostname;  // for the UTS namespace
};

// Makes a user namespace with MAPPINGS and the namespaces OWNED (created by its owner, so the
// containers in it may manage them), pinned at DIR/user, DIR/net, DIR/ipc and DIR/uts: through
// SHIM_BINARY (kapal-shim --namespaces), since a multithreaded process like kapald can neither
// enter a new user namespace nor fork safely into one. The network namespace's loopback is up.
// Nothing is left pinned on failure.
absl::Status PinUserNamespaces(const std::string& shim_binary, const std::string& dir,
                               const IdMappings& mappings, const OwnedNamespaces& owned);

// A user namespace with MAPPINGS, open, for idmapped mounts (pinned for a moment under
// SCRATCH_DIR, which must exist, and unpinned again).
absl::StatusOr<base::UniqueFd> OpenUserNamespace(const std::string& shim_binary,
                                                 const std::string& scratch_dir,
                                                 const IdMappings& mappings);

// Mounts a recursive clone of SOURCE on TARGET with the mapping of user namespace USERNS_FD
// (TARGET exists: a directory for a directory, a file for a file). FAILED_PRECONDITION when the
// filesystem cannot be idmapped.
absl::Status IdmappedBind(const std::string& source, const std::string& target, int userns_fd);

// Mounts a container's root filesystem MOUNTS (the snapshotter's) on TARGET as its user
// namespace USERNS_FD sees it: an overlay's lower layers through idmapped clones (made below
// SCRATCH_DIR and unmounted once the overlay holds them; overlayfs itself cannot be idmapped),
// its upper directory's root owned by ROOT_UID:ROOT_GID (the host ids of the container's root)
// so that the container's root may write to /; a bind (the native snapshotter) idmapped whole.
absl::Status MountIdmappedRootfs(const std::vector<snapshotter::Mount>& mounts,
                                 const std::string& target, int userns_fd,
                                 const std::string& scratch_dir, uint32_t root_uid,
                                 uint32_t root_gid);

// FAILED_PRECONDITION naming the first directory on the way to PATH (PATH too) that others may
// not search: a container's root in a user namespace is "others" to the host's directories, and
// runc, inside that namespace, must reach the container's root filesystem below PATH.
absl::Status CheckSearchableByOthers(const std::string& path);

// Whether this kernel can make idmapped mounts of the directory DIR's filesystem and mount an
// overlay on idmapped layers (Linux 5.19 on): tried once with throwaway mounts under DIR.
bool IdmappedMountsSupported(const std::string& shim_binary, const std::string& dir);

}  // namespace kapal::runtime
