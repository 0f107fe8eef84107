#pragma once

#include "absl/status/status.h"
#include "images/image_store.h"
#include "snapshotter/snapshotter.h"

namespace kapal::images {

// Removes committed snapshots that no image's layer chain uses any more, leaves first. One that
// still has children (a container's writable snapshot on a removed image) stays until they go.
absl::Status RemoveUnusedSnapshots(ImageStore& images, snapshotter::Snapshotter& snapshots);

}  // namespace kapal::images
