#pragma once

// What kapald mounts in a container's bundle before the OCI runtime runs: the root filesystem
// (idmapped in a pod with a user namespace), volumes kubelet gave id mappings for (idmapped
// binds), and image volumes (KEP-4639: an image's layers, read-only). runc only binds them from
// the bundle. Everything sits under the bundle and goes with UnmountBundle.

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/cri_messages.h"
#include "images/image_store.h"
#include "runtime/userns.h"
#include "snapshotter/snapshotter.h"

namespace kapal::runtime {

// The snapshot of a container's image volume N: the container's snapshot key, then this.
inline constexpr char kImageVolumeSnapshotInfix[] = "-image-";

struct BundleMountInputs {
  std::string snapshot_key;  // the container's writable snapshot
  std::string bundle;
  std::string shim_binary;
  std::string pod_dir;                   // its user namespace pin is POD_DIR/user
  std::optional<IdMappings> pod_userns;  // the pod's user namespace, when it has one
};

class BundleMounts {
 public:
  BundleMounts(images::ImageStore& images, snapshotter::Snapshotter& snapshots)
      : images_(images), snapshots_(snapshots) {}

  // Mounts the prepared ROOTFS snapshot mounts at BUNDLE/rootfs.
  absl::Status MountRootfs(const BundleMountInputs& in,
                           const std::vector<snapshotter::Mount>& rootfs);
  // CONFIG's mounts as runc is to make them: an idmapped or image volume becomes a bind of its
  // mount under BUNDLE/mounts/N (made here), the others stay. Checks what such mounts need
  // (the image pulled, a sub path inside it).
  absl::StatusOr<runtime::v1::ContainerConfig> MountVolumes(
      const BundleMountInputs& in, const runtime::v1::ContainerConfig& config);

 private:
  absl::Status MountImageVolume(const BundleMountInputs& in, const runtime::v1::Mount& mount,
                                int index, const std::string& target);

  images::ImageStore& images_;
  snapshotter::Snapshotter& snapshots_;
};

// Unmounts the root filesystem and the volumes of the container whose bundle is BUNDLE and
// removes its image volume snapshots (its own snapshot SNAPSHOT_KEY stays); what is gone
// already is fine. Always before the bundle is removed: a bind below it must never lead a
// removal into a volume's files.
absl::Status UnmountBundle(snapshotter::Snapshotter& snapshots, const std::string& bundle,
                           const std::string& snapshot_key);

}  // namespace kapal::runtime
