#pragma once

// snapshotter: overlay and native snapshots of image layers and container root filesystems, in
// containerd's model (prepare, commit, view, remove), and the mounts that make them. It knows
// nothing of images' formats or of containers.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "store/store.h"

namespace kapal::snapshotter {

// One mount(2) to perform, as containerd describes it: overlay with lowerdir/upperdir/workdir,
// or a bind mount.
struct Mount {
  std::string type;    // "overlay" or "bind"
  std::string source;  // "overlay" or a directory
  std::vector<std::string> options;
  bool operator==(const Mount&) const = default;
};

enum class Kind { kActive, kView, kCommitted };

struct Info {
  std::string key;
  std::string parent;  // empty for a base snapshot
  Kind kind = Kind::kActive;
  std::string directory;
  int64_t created_at = 0;
};

struct Usage {
  int64_t bytes = 0;
  int64_t inodes = 0;
};

// Committed snapshots whose tree is not yet known to be on disk (Sync::kDeferred).
struct UnsyncedCounts {
  int64_t this_boot = 0;     // waiting for the background sync
  int64_t earlier_boot = 0;  // the machine went down first and the owner could not make them again
};

// Where an active snapshot's tree lives: with the image layers, or (a container's root
// filesystem) under the writable root, which may be another filesystem (KEP-4191's split image
// filesystem: kubelet then watches the two disks apart).
enum class Placement { kWithLayers, kWritable };

enum class Driver {
  kOverlay,  // layers share content through overlayfs
  kNative,   // each snapshot is a full copy of its parent (when overlay is not available)
};

// When a committed snapshot's tree is made durable.
enum class Sync {
  // One syncfs before the record says committed: a crash never leaves a committed snapshot
  // with half its files.
  kAtCommit,
  // Overlay only (the native driver syncs at commit): for a tree that can be made again from a
  // durable source (an image layer from its fsynced blob). The commit does not wait for the
  // disk; a background syncfs follows (DeferredSyncOptions; the kernel's own writeback
  // starts within 30 s anyway), and until then the record names this boot. After a crash of
  // the machine, UnsyncedFromEarlierBoots lists such snapshots for their owner to rebuild
  // (ReplaceTree); after a crash of kapald alone the page cache still holds them.
  kDeferred,
};

// How deferred commits are synced (Sync::kDeferred).
struct DeferredSyncOptions {
  std::string boot_id;  // names this boot of the machine; "": the kernel's random boot id
  // A background syncfs follows the first deferred commit after DELAY; while a SyncHold lives
  // (a pull writing), it waits, at most MAX_HOLD longer.
  std::chrono::milliseconds delay = std::chrono::seconds(10);
  std::chrono::milliseconds max_hold = std::chrono::seconds(60);
};

// Snapshots of filesystem trees, as containerd's snapshotters have them. An active snapshot is
// writable (a layer being unpacked, a container's root); committing it makes it an immutable
// parent for others; a view is a read-only snapshot of a parent. Metadata lives in the store;
// trees live under ROOT/snapshots/N (N a small number, so that overlay's mount options for
// images with many layers stay short), or WRITABLE_ROOT/snapshots/N for those placed there.
class Snapshotter {
 public:
  // WRITABLE_ROOT: where kWritable snapshots go; empty means ROOT.
  static absl::StatusOr<std::unique_ptr<Snapshotter>> Open(std::string root, Driver driver,
                                                           store::Store& store,
                                                           std::string writable_root = "",
                                                           DeferredSyncOptions deferred_sync = {});
  // Stops the background sync; what it had not synced yet is synced by the next Open in this
  // boot (the owner calls SyncDeferred first at a clean stop).
  ~Snapshotter();
  Snapshotter(const Snapshotter&) = delete;
  Snapshotter& operator=(const Snapshotter&) = delete;

  // While one lives (a pull), the background sync of deferred commits waits (at most
  // max_hold): its writeback would make the pull's own fsyncs wait behind it.
  class SyncHold {
   public:
    explicit SyncHold(Snapshotter& owner);
    ~SyncHold();
    SyncHold(const SyncHold&) = delete;
    SyncHold& operator=(const SyncHold&) = delete;

   private:
    Snapshotter& owner_;
  };

  // A new active snapshot KEY on top of PARENT (a committed snapshot, or "" for none).
  // ALREADY_EXISTS when KEY is taken; NOT_FOUND when PARENT is unknown or not committed.
  absl::StatusOr<std::vector<Mount>> Prepare(const std::string& key, const std::string& parent,
                                             Placement placement = Placement::kWithLayers);
  // A read-only snapshot of PARENT.
  absl::StatusOr<std::vector<Mount>> View(const std::string& key, const std::string& parent);
  absl::StatusOr<std::vector<Mount>> Mounts(const std::string& key);
  // Makes active snapshot KEY the committed snapshot NAME. ALREADY_EXISTS when NAME exists
  // (the caller removes KEY and uses NAME: another pull committed the same layer first).
  // MEASURED, when given, is the space KEY's tree takes, measured by the caller since it was
  // last written (a pull measures each staged layer while others still unpack); otherwise the
  // commit walks the tree to record it.
  absl::Status Commit(const std::string& name, const std::string& key, Sync sync = Sync::kAtCommit,
                      std::optional<Usage> measured = std::nullopt);
  // Syncs the trees of deferred commits now and records them as on disk (at shutdown, and for
  // tests; otherwise a background thread does, as DeferredSyncOptions say).
  absl::Status SyncDeferred();
  // Committed snapshots whose tree was not known to be on disk when an earlier boot ended:
  // their files may be incomplete after a power loss.
  std::vector<Info> UnsyncedFromEarlierBoots();
  // How many committed snapshots wait for their deferred sync, by the boot that committed them.
  absl::StatusOr<UnsyncedCounts> CountUnsynced();
  // Whether KEY's tree still waits for its deferred sync (in this boot or an earlier one).
  absl::StatusOr<bool> Unsynced(const std::string& key);
  // Replaces committed snapshot KEY's tree with STAGED (from NewStagingDirectory: the same
  // content made again), syncs it and records KEY as on disk. Nothing may have KEY mounted.
  absl::Status ReplaceTree(const std::string& key, const std::string& staged);
  // Removes KEY and its tree. FAILED_PRECONDITION when other snapshots have it as parent;
  // removing an unknown key succeeds.
  absl::Status Remove(const std::string& key);
  absl::StatusOr<Info> Stat(const std::string& key);
  absl::StatusOr<Usage> GetUsage(const std::string& key);
  std::vector<Info> Walk();
  // Space of all committed snapshots, as measured when each was committed (no walk of the disk).
  absl::StatusOr<Usage> CommittedUsage();

  // The directory that holds KEY's own content: where a layer is unpacked into an active
  // snapshot.
  absl::StatusOr<std::string> ContentDirectory(const std::string& key);
  Driver GetDriver() const { return driver_; }
  const std::string& Root() const { return root_; }
  // Where containers' writable layers live (Root() unless configured apart).
  const std::string& WritableRoot() const { return writable_root_; }

  // A fresh directory on the snapshots' filesystem to unpack a layer into before its parent is
  // committed (overlay only: a layer's own content does not depend on its parent's), so that
  // the layers of an image unpack at once, each as soon as it is downloaded. Adopt moves it in
  // as active snapshot KEY's content; CleanUp removes staging left by a crash.
  absl::StatusOr<std::string> NewStagingDirectory();
  absl::Status Adopt(const std::string& key, const std::string& staged);

  // Removes what a crash left: active snapshots whose key starts with PREFIX (unpacks in
  // progress) and directories no snapshot owns.
  absl::Status CleanUp(const std::string& prefix);

 private:
  Snapshotter(std::string root, std::string writable_root, Driver driver, store::Store& store,
              DeferredSyncOptions deferred_sync)
      : root_(std::move(root)),
        writable_root_(std::move(writable_root)),
        driver_(driver),
        store_(store),
        deferred_sync_(std::move(deferred_sync)) {}
  // The background thread: a SyncDeferred once the oldest pending commit is
  // deferred_sync_.delay old and no SyncHold lives (or max_hold more passed), until stopping_.
  void RunSyncer();
  absl::StatusOr<std::vector<Mount>> Create(const std::string& key, const std::string& parent,
                                            Kind kind, Placement placement);
  absl::StatusOr<std::vector<Mount>> MountsFor(const Info& info);
  absl::StatusOr<std::vector<Info>> Chain(const std::string& key);

  std::string root_;
  std::string writable_root_;
  Driver driver_;
  store::Store& store_;
  DeferredSyncOptions deferred_sync_;  // its boot_id filled in by Open

  // Deferred commits not yet synced: (name, rowid), the rowid telling a snapshot from a later
  // one of the same name.
  std::mutex sync_mutex_;
  std::condition_variable sync_wake_;
  std::set<std::pair<std::string, int64_t>> unsynced_;
  std::optional<std::chrono::steady_clock::time_point> sync_due_;
  bool stopping_ = false;
  int holds_ = 0;
  std::mutex syncing_;  // one SyncDeferred at a time
  std::thread syncer_;
};

// Whether overlayfs can be mounted under DIRECTORY (tried with a throwaway mount).
bool OverlaySupported(const std::string& directory);

}  // namespace kapal::snapshotter
