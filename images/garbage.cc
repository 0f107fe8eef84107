#include "images/garbage.h"

#include <mutex>
#include <set>
#include <string>

namespace kapal::images {

absl::Status RemoveUnusedSnapshots(ImageStore& images, snapshotter::Snapshotter& snapshots) {
  std::unique_lock collecting(images.CollectionLock());
  std::set<std::string> in_use;
  for (const Digest& chain_id : images.ChainIdsInUse()) in_use.insert(chain_id.String());
  for (bool removed_any = true; removed_any;) {
    removed_any = false;
    for (const snapshotter::Info& info : snapshots.Walk()) {
      if (info.kind != snapshotter::Kind::kCommitted || in_use.contains(info.key)) continue;
      absl::Status removed = snapshots.Remove(info.key);
      if (removed.ok()) {
        removed_any = true;
      } else if (!absl::IsFailedPrecondition(removed)) {
        return removed;
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace kapal::images
