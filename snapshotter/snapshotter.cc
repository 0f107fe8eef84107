#include "snapshotter/snapshotter.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <dirent.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/child_process.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "base/unique_fd.h"
#include "snapshotter/mount.h"

namespace kapal::snapshotter {

namespace {

const char* KindName(Kind kind) {
  switch (kind) {
    case Kind::kActive:
      return "active";
    case Kind::kView:
      return "view";
    case Kind::kCommitted:
      return "committed";
  }
  return "active";
}

Kind KindFrom(const std::string& name) {
  if (name == "committed") return Kind::kCommitted;
  if (name == "view") return Kind::kView;
  return Kind::kActive;
}

int64_t NowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool IsUniqueViolation(const SQLite::Exception& e) {
  return (e.getExtendedErrorCode() & 0xff) == SQLITE_CONSTRAINT;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Snapshotter>> Snapshotter::Open(std::string root, Driver driver,
                                                               store::Store& store,
                                                               std::string writable_root,
                                                               DeferredSyncOptions deferred_sync) {
  if (writable_root.empty()) writable_root = root;
  for (const std::string& dir : {root, writable_root}) {
    if (absl::Status made = base::MakeDirectories(dir + "/snapshots", 0700); !made.ok()) {
      return made;
    }
  }
  if (deferred_sync.boot_id.empty()) {
    // Without it a deferred commit could not be told from one of an earlier boot: every commit
    // then syncs at once.
    if (absl::StatusOr<std::string> read = base::ReadFile("/proc/sys/kernel/random/boot_id");
        read.ok()) {
      deferred_sync.boot_id = std::string(absl::StripAsciiWhitespace(*read));
    }
  }
  std::unique_ptr<Snapshotter> snapshots(new Snapshotter(std::move(root), std::move(writable_root),
                                                         driver, store, std::move(deferred_sync)));
  // Deferred commits of this boot that an earlier kapald did not live to sync: their trees are
  // in the page cache, and get the sync they were promised.
  if (!snapshots->deferred_sync_.boot_id.empty()) {
    absl::Status listed = store.WithDatabase([&](SQLite::Database& db) {
      SQLite::Statement query(db,
                              "SELECT key, rowid FROM snapshots WHERE kind = 'committed' AND "
                              "unsynced_boot = ?");
      query.bind(1, snapshots->deferred_sync_.boot_id);
      while (query.executeStep()) {
        snapshots->unsynced_.emplace(query.getColumn(0).getString(), query.getColumn(1).getInt64());
      }
    });
    if (!listed.ok()) return listed;
    if (!snapshots->unsynced_.empty()) {
      snapshots->sync_due_ = std::chrono::steady_clock::now();
    }
  }
  snapshots->syncer_ = std::thread([raw = snapshots.get()] { raw->RunSyncer(); });
  return snapshots;
}

Snapshotter::~Snapshotter() {
  {
    std::lock_guard lock(sync_mutex_);
    stopping_ = true;
  }
  sync_wake_.notify_one();
  if (syncer_.joinable()) syncer_.join();
}

void Snapshotter::RunSyncer() {
  std::unique_lock lock(sync_mutex_);
  for (;;) {
    sync_wake_.wait(lock, [&] { return stopping_ || sync_due_.has_value(); });
    if (stopping_) return;
    auto due = *sync_due_;
    if (sync_wake_.wait_until(lock, due, [&] { return stopping_; })) return;
    sync_wake_.wait_until(lock, due + deferred_sync_.max_hold,
                          [&] { return stopping_ || holds_ == 0; });
    if (stopping_) return;
    lock.unlock();
    (void)SyncDeferred();  // a failure puts them back, due again later
    lock.lock();
  }
}

Snapshotter::SyncHold::SyncHold(Snapshotter& owner) : owner_(owner) {
  std::lock_guard lock(owner_.sync_mutex_);
  ++owner_.holds_;
}

Snapshotter::SyncHold::~SyncHold() {
  {
    std::lock_guard lock(owner_.sync_mutex_);
    --owner_.holds_;
  }
  owner_.sync_wake_.notify_all();
}

absl::Status Snapshotter::SyncDeferred() {
  std::lock_guard one_at_a_time(syncing_);
  std::set<std::pair<std::string, int64_t>> synced;
  {
    std::lock_guard lock(sync_mutex_);
    synced.swap(unsynced_);
    sync_due_.reset();
  }
  if (synced.empty()) return absl::OkStatus();
  auto put_back = [&](absl::Status status) {
    std::lock_guard lock(sync_mutex_);
    unsynced_.insert(synced.begin(), synced.end());
    sync_due_ = std::chrono::steady_clock::now() + deferred_sync_.delay;
    return status;
  };
  // Deferred commits are image layers, which live under root_.
  if (base::UniqueFd fd(::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      !fd || ::syncfs(fd.Get()) != 0) {
    return put_back(base::ErrnoStatus(errno, "sync " + root_));
  }
  absl::Status recorded = store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Transaction transaction(db);
    SQLite::Statement update(db,
                             "UPDATE snapshots SET unsynced_boot = '' WHERE key = ? AND rowid = ?");
    for (const auto& [name, rowid] : synced) {
      update.bind(1, name);
      update.bind(2, rowid);
      update.exec();
      update.reset();
    }
    transaction.commit();
  });
  if (!recorded.ok()) return put_back(recorded);
  return absl::OkStatus();
}

std::vector<Info> Snapshotter::UnsyncedFromEarlierBoots() {
  std::vector<Info> found;
  (void)store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement query(db,
                            "SELECT key, COALESCE(parent, ''), kind, directory, created_at FROM "
                            "snapshots WHERE kind = 'committed' AND unsynced_boot != '' AND "
                            "unsynced_boot != ? ORDER BY rowid");
    query.bind(1, deferred_sync_.boot_id);
    while (query.executeStep()) {
      found.push_back(Info{query.getColumn(0).getString(), query.getColumn(1).getString(),
                           KindFrom(query.getColumn(2).getString()), query.getColumn(3).getString(),
                           query.getColumn(4).getInt64()});
    }
  });
  return found;
}

absl::StatusOr<UnsyncedCounts> Snapshotter::CountUnsynced() {
  UnsyncedCounts counts;
  absl::Status status = store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement query(db,
                            "SELECT COALESCE(SUM(unsynced_boot = ?), 0), "
                            "COALESCE(SUM(unsynced_boot != ?), 0) FROM snapshots "
                            "WHERE kind = 'committed' AND unsynced_boot != ''");
    query.bind(1, deferred_sync_.boot_id);
    query.bind(2, deferred_sync_.boot_id);
    if (query.executeStep()) {
      counts.this_boot = query.getColumn(0).getInt64();
      counts.earlier_boot = query.getColumn(1).getInt64();
    }
  });
  if (!status.ok()) return status;
  return counts;
}

absl::StatusOr<bool> Snapshotter::Unsynced(const std::string& key) {
  std::optional<bool> unsynced;
  absl::Status status = store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement query(db, "SELECT unsynced_boot != '' FROM snapshots WHERE key = ?");
    query.bind(1, key);
    if (query.executeStep()) unsynced = query.getColumn(0).getInt() != 0;
  });
  if (!status.ok()) return status;
  if (!unsynced) return absl::NotFoundError(absl::StrCat("snapshot \"", key, "\" does not exist"));
  return *unsynced;
}

absl::Status Snapshotter::ReplaceTree(const std::string& key, const std::string& staged) {
  absl::StatusOr<Info> info = Stat(key);
  if (!info.ok()) return info.status();
  if (info->kind != Kind::kCommitted) {
    return absl::FailedPreconditionError(absl::StrCat("snapshot \"", key, "\" is not committed"));
  }
  std::string tree = info->directory + "/fs";
  struct stat root {};
  if (::stat(tree.c_str(), &root) == 0) {
    if (::chown(staged.c_str(), root.st_uid, root.st_gid) != 0 ||
        ::chmod(staged.c_str(), root.st_mode & 07777) != 0) {
      return base::ErrnoStatus(errno, "set the mode of " + staged);
    }
    // One step: the snapshot has a whole tree, old or new, at any moment; the old one ends up
    // at STAGED, which the start-up clean-up removes if the removal below does not happen.
    if (::renameat2(AT_FDCWD, staged.c_str(), AT_FDCWD, tree.c_str(), RENAME_EXCHANGE) != 0) {
      return base::ErrnoStatus(errno, absl::StrCat("exchange ", staged, " and ", tree));
    }
  } else if (errno == ENOENT) {
    // The crash took the tree's own directory entry too (its move into place was not yet in
    // the journal): the rebuilt tree takes its place, with the mode the layer gave its root.
    if (absl::Status made = base::MakeDirectories(info->directory, 0700); !made.ok()) return made;
    if (::rename(staged.c_str(), tree.c_str()) != 0) {
      return base::ErrnoStatus(errno, absl::StrCat("move ", staged, " to ", tree));
    }
  } else {
    return base::ErrnoStatus(errno, "stat " + tree);
  }
  if (base::UniqueFd fd(::open(tree.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      !fd || ::syncfs(fd.Get()) != 0) {
    return base::ErrnoStatus(errno, "sync " + tree);
  }
  absl::Status recorded = store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement update(db, "UPDATE snapshots SET unsynced_boot = '' WHERE key = ?");
    update.bind(1, key);
    update.exec();
  });
  if (!recorded.ok()) return recorded;
  return base::RemoveTree(staged);
}

absl::StatusOr<Info> Snapshotter::Stat(const std::string& key) {
  std::optional<Info> info;
  absl::Status status = store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement query(db,
                            "SELECT key, COALESCE(parent, ''), kind, directory, created_at FROM "
                            "snapshots WHERE key = ?");
    query.bind(1, key);
    if (query.executeStep()) {
      info = Info{query.getColumn(0).getString(), query.getColumn(1).getString(),
                  KindFrom(query.getColumn(2).getString()), query.getColumn(3).getString(),
                  query.getColumn(4).getInt64()};
    }
  });
  if (!status.ok()) return status;
  if (!info) return absl::NotFoundError(absl::StrCat("snapshot \"", key, "\" does not exist"));
  return *info;
}

absl::StatusOr<std::vector<Info>> Snapshotter::Chain(const std::string& key) {
  std::vector<Info> chain;
  std::string next = key;
  while (!next.empty()) {
    absl::StatusOr<Info> info = Stat(next);
    if (!info.ok()) return info.status();
    chain.push_back(*info);
    next = info->parent;
    if (chain.size() > 1000) return absl::InternalError("snapshot parent chain has a loop");
  }
  return chain;
}

absl::StatusOr<std::vector<Mount>> Snapshotter::MountsFor(const Info& info) {
  absl::StatusOr<std::vector<Info>> chain = Chain(info.key);
  if (!chain.ok()) return chain.status();
  // Lower directories, nearest parent first, as overlayfs takes them.
  std::vector<std::string> lowers;
  for (size_t i = info.kind == Kind::kCommitted ? 0 : 1; i < chain->size(); ++i) {
    lowers.push_back((*chain)[i].directory + "/fs");
  }
  if (info.kind == Kind::kActive) {
    if (driver_ == Driver::kNative || lowers.empty()) {
      return std::vector<Mount>{{"bind", info.directory + "/fs", {"rw", "rbind"}}};
    }
    return std::vector<Mount>{
        {"overlay",
         "overlay",
         {"index=off", "lowerdir=" + absl::StrJoin(lowers, ":"),
          "upperdir=" + info.directory + "/fs", "workdir=" + info.directory + "/work"}}};
  }
  // View or committed: read-only.
  if (driver_ == Driver::kNative) {
    const std::string& source = info.kind == Kind::kView ? (*chain)[1].directory : info.directory;
    return std::vector<Mount>{{"bind", source + "/fs", {"ro", "rbind"}}};
  }
  if (lowers.size() == 1) return std::vector<Mount>{{"bind", lowers.front(), {"ro", "rbind"}}};
  return std::vector<Mount>{
      {"overlay", "overlay", {"ro", "index=off", "lowerdir=" + absl::StrJoin(lowers, ":")}}};
}

absl::StatusOr<std::vector<Mount>> Snapshotter::Create(const std::string& key,
                                                       const std::string& parent, Kind kind,
                                                       Placement placement) {
  if (key.empty()) return absl::InvalidArgumentError("snapshot key must not be empty");
  if (!parent.empty()) {
    absl::StatusOr<Info> parent_info = Stat(parent);
    if (!parent_info.ok()) return parent_info.status();
    if (parent_info->kind != Kind::kCommitted) {
      return absl::FailedPreconditionError(
          absl::StrCat("parent snapshot \"", parent, "\" is not committed"));
    }
  } else if (kind == Kind::kView) {
    return absl::InvalidArgumentError("a view needs a parent");
  }
  std::string directory;
  bool exists = false;
  absl::Status inserted = store_.WithDatabase([&](SQLite::Database& db) {
    try {
      SQLite::Transaction transaction(db);
      SQLite::Statement insert(db,
                               "INSERT INTO snapshots(key, parent, kind, directory, created_at) "
                               "VALUES(?, ?, ?, '', ?)");
      insert.bind(1, key);
      if (parent.empty()) {
        insert.bind(2);
      } else {
        insert.bind(2, parent);
      }
      insert.bind(3, KindName(kind));
      insert.bind(4, NowSeconds());
      insert.exec();
      directory = absl::StrCat(placement == Placement::kWritable ? writable_root_ : root_,
                               "/snapshots/", db.getLastInsertRowid());
      SQLite::Statement update(db, "UPDATE snapshots SET directory = ? WHERE key = ?");
      update.bind(1, directory);
      update.bind(2, key);
      update.exec();
      transaction.commit();
    } catch (const SQLite::Exception& e) {
      if (!IsUniqueViolation(e)) throw;
      exists = true;
    }
  });
  if (!inserted.ok()) return inserted;
  if (exists)
    return absl::AlreadyExistsError(absl::StrCat("snapshot \"", key, "\" already exists"));

  auto undo = [&](absl::Status status) -> absl::Status {
    (void)Remove(key);
    return status;
  };
  for (const char* sub : {"/fs", "/work"}) {
    if (absl::Status made = base::MakeDirectories(directory + sub, 0755); !made.ok())
      return undo(made);
  }
  if (!parent.empty()) {
    // The root of an overlay takes the upper directory's mode and owner: it must be the image's
    // root entry's (a container's "/" of 0700 keeps a non-root user from its own libraries).
    absl::StatusOr<Info> parent_info = Stat(parent);
    if (!parent_info.ok()) return undo(parent_info.status());
    struct stat root {};
    std::string parent_fs = parent_info->directory + "/fs";
    std::string fs = directory + "/fs";
    if (::stat(parent_fs.c_str(), &root) != 0) {
      return undo(base::ErrnoStatus(errno, "stat " + parent_fs));
    }
    if (::chown(fs.c_str(), root.st_uid, root.st_gid) != 0 ||
        ::chmod(fs.c_str(), root.st_mode & 07777) != 0) {
      return undo(base::ErrnoStatus(errno, "set the mode of " + fs));
    }
  }
  if (driver_ == Driver::kNative && kind == Kind::kActive && !parent.empty()) {
    // A native snapshot starts as a full copy of its parent, owners, modes and links included.
    absl::StatusOr<Info> parent_info = Stat(parent);
    if (!parent_info.ok()) return undo(parent_info.status());
    absl::StatusOr<base::ChildProcess> copy = base::ChildProcess::Spawn(
        {"/bin/cp", "-a", "--", parent_info->directory + "/fs/.", directory + "/fs/"});
    if (!copy.ok()) return undo(copy.status());
    absl::StatusOr<base::ExitInfo> done = copy->Wait(std::chrono::hours(1));
    if (!done.ok()) return undo(done.status());
    if (!done->exited || done->exit_code != 0) {
      return undo(absl::InternalError(
          absl::StrCat("copy of snapshot ", parent, " failed: ", done->Describe())));
    }
  }
  absl::StatusOr<Info> info = Stat(key);
  if (!info.ok()) return undo(info.status());
  return MountsFor(*info);
}

absl::StatusOr<std::vector<Mount>> Snapshotter::Prepare(const std::string& key,
                                                        const std::string& parent,
                                                        Placement placement) {
  return Create(key, parent, Kind::kActive, placement);
}

absl::StatusOr<std::vector<Mount>> Snapshotter::View(const std::string& key,
                                                     const std::string& parent) {
  return Create(key, parent, Kind::kView, Placement::kWithLayers);
}

absl::StatusOr<std::vector<Mount>> Snapshotter::Mounts(const std::string& key) {
  absl::StatusOr<Info> info = Stat(key);
  if (!info.ok()) return info.status();
  return MountsFor(*info);
}

absl::Status Snapshotter::Commit(const std::string& name, const std::string& key, Sync sync,
                                 std::optional<Usage> measured) {
  absl::StatusOr<Info> info = Stat(key);
  if (!info.ok()) return info.status();
  if (info->kind != Kind::kActive) {
    return absl::FailedPreconditionError(absl::StrCat("snapshot \"", key, "\" is not active"));
  }
  absl::StatusOr<Usage> usage = measured ? absl::StatusOr<Usage>(*measured) : GetUsage(key);
  if (!usage.ok()) return usage.status();
  bool deferred =
      sync == Sync::kDeferred && driver_ == Driver::kOverlay && !deferred_sync_.boot_id.empty();
  // The content reaches the disk before the record says committed: a crash never leaves a
  // committed snapshot with half its files. One syncfs for the filesystem, not an fsync per
  // file (a layer has thousands); it also covers layers staged beside this one. Deferred: the
  // record names this boot until the background sync, so that a later boot knows.
  if (!deferred) {
    if (base::UniqueFd fd(::open(info->directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        !fd || ::syncfs(fd.Get()) != 0) {
      return base::ErrnoStatus(errno, "sync " + info->directory);
    }
  }
  bool exists = false;
  int64_t rowid = 0;
  absl::Status updated = store_.WithDatabase([&](SQLite::Database& db) {
    try {
      SQLite::Statement update(
          db,
          "UPDATE snapshots SET key = ?, kind = 'committed', size = ?, inodes = ?, "
          "unsynced_boot = ? WHERE key = ? AND kind = 'active' RETURNING rowid");
      update.bind(1, name);
      update.bind(2, usage->bytes);
      update.bind(3, usage->inodes);
      update.bind(4, deferred ? deferred_sync_.boot_id : std::string());
      update.bind(5, key);
      if (update.executeStep()) rowid = update.getColumn(0).getInt64();
    } catch (const SQLite::Exception& e) {
      if (!IsUniqueViolation(e)) throw;
      exists = true;
    }
  });
  if (!updated.ok()) return updated;
  if (exists)
    return absl::AlreadyExistsError(absl::StrCat("snapshot \"", name, "\" already exists"));
  // The work directory is only for overlay upper layers; a committed layer never needs it.
  (void)base::RemoveTree(info->directory + "/work");
  if (deferred) {
    std::lock_guard lock(sync_mutex_);
    unsynced_.emplace(name, rowid);
    if (!sync_due_) {
      sync_due_ = std::chrono::steady_clock::now() + deferred_sync_.delay;
      sync_wake_.notify_one();
    }
  }
  return absl::OkStatus();
}

absl::Status Snapshotter::Remove(const std::string& key) {
  std::string directory;
  int children = 0;
  bool found = false;
  absl::Status removed = store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Transaction transaction(db);
    SQLite::Statement query(db, "SELECT directory FROM snapshots WHERE key = ?");
    query.bind(1, key);
    if (!query.executeStep()) return;
    found = true;
    directory = query.getColumn(0).getString();
    SQLite::Statement count(db, "SELECT COUNT(*) FROM snapshots WHERE parent = ?");
    count.bind(1, key);
    count.executeStep();
    children = count.getColumn(0).getInt();
    if (children > 0) return;
    SQLite::Statement remove(db, "DELETE FROM snapshots WHERE key = ?");
    remove.bind(1, key);
    remove.exec();
    transaction.commit();
    // SQLite gives the next snapshot the highest free rowid, which may be this one's, and so
    // this directory's name: it is moved aside before the store is free for that insert, so
    // that the removal below can never delete the new snapshot's files.
    if (!directory.empty()) {
      std::string aside = absl::StrCat(directory, ".removed-",
                                       std::chrono::steady_clock::now().time_since_epoch().count());
      if (::rename(directory.c_str(), aside.c_str()) == 0) directory = aside;
    }
  });
  if (!removed.ok()) return removed;
  if (!found) return absl::OkStatus();
  if (children > 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("snapshot \"", key, "\" is the parent of ", children, " other snapshots"));
  }
  // The row is gone first: a crash here leaves an orphan directory, which CleanUp removes.
  if (!directory.empty()) return base::RemoveTree(directory);
  return absl::OkStatus();
}

absl::StatusOr<Usage> Snapshotter::GetUsage(const std::string& key) {
  absl::StatusOr<Info> info = Stat(key);
  if (!info.ok()) return info.status();
  std::string fs = info->directory + "/fs";
  struct stat st {};
  if (::lstat(fs.c_str(), &st) != 0) return base::ErrnoStatus(errno, "stat " + fs);
  base::TreeUsage measured = base::MeasureTree(fs);
  return Usage{measured.bytes, measured.inodes};
}

std::vector<Info> Snapshotter::Walk() {
  std::vector<Info> all;
  (void)store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement query(
        db,
        "SELECT key, COALESCE(parent, ''), kind, directory, created_at FROM snapshots "
        "ORDER BY rowid");
    while (query.executeStep()) {
      all.push_back(Info{query.getColumn(0).getString(), query.getColumn(1).getString(),
                         KindFrom(query.getColumn(2).getString()), query.getColumn(3).getString(),
                         query.getColumn(4).getInt64()});
    }
  });
  return all;
}

absl::StatusOr<Usage> Snapshotter::CommittedUsage() {
  Usage usage;
  absl::Status status = store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement query(
        db,
        "SELECT COALESCE(SUM(size), 0), COALESCE(SUM(inodes), 0) FROM snapshots "
        "WHERE kind = 'committed'");
    query.executeStep();
    usage = {query.getColumn(0).getInt64(), query.getColumn(1).getInt64()};
  });
  if (!status.ok()) return status;
  return usage;
}

absl::StatusOr<std::string> Snapshotter::ContentDirectory(const std::string& key) {
  absl::StatusOr<Info> info = Stat(key);
  if (!info.ok()) return info.status();
  return info->directory + "/fs";
}

absl::StatusOr<std::string> Snapshotter::NewStagingDirectory() {
  std::string staging = root_ + "/staging";
  if (absl::Status made = base::MakeDirectories(staging, 0700); !made.ok()) return made;
  // Every layer is a tree of its own. Spread over the block groups, a new layer is not packed
  // next to the trees a removal just freed: without a journal, ext4 skips inodes freed in the
  // last minute, and allocating beside a removed tree scanned past all of them (a third of a
  // re-pull's CPU in bench/pull-bench.sh).
  base::MarkAsTopOfTrees(staging);
  std::string pattern = staging + "/layer.XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) return base::ErrnoStatus(errno, "mkdtemp " + pattern);
  // The root of a layer is the image's "/": 0755 unless the layer says otherwise.
  ::chmod(pattern.c_str(), 0755);
  return pattern;
}

absl::Status Snapshotter::Adopt(const std::string& key, const std::string& staged) {
  absl::StatusOr<std::string> directory = ContentDirectory(key);
  if (!directory.ok()) return directory.status();
  // The new snapshot's content directory is still empty: the staged tree takes its place, with
  // the root's mode and owner Prepare gave it (the parent's, as for a layer unpacked in place).
  struct stat root {};
  if (::stat(directory->c_str(), &root) != 0) return base::ErrnoStatus(errno, "stat " + *directory);
  if (::rmdir(directory->c_str()) != 0) return base::ErrnoStatus(errno, "rmdir " + *directory);
  if (::rename(staged.c_str(), directory->c_str()) != 0) {
    return base::ErrnoStatus(errno, absl::StrCat("move ", staged, " to ", *directory));
  }
  if (::chown(directory->c_str(), root.st_uid, root.st_gid) != 0 ||
      ::chmod(directory->c_str(), root.st_mode & 07777) != 0) {
    return base::ErrnoStatus(errno, "set the mode of " + *directory);
  }
  return absl::OkStatus();
}

absl::Status Snapshotter::CleanUp(const std::string& prefix) {
  if (absl::Status removed = base::RemoveTree(root_ + "/staging"); !removed.ok()) return removed;
  std::set<std::string> owned;
  for (const Info& info : Walk()) {
    if (info.kind == Kind::kActive && absl::StartsWith(info.key, prefix)) {
      if (absl::Status removed = Remove(info.key); !removed.ok()) return removed;
    } else {
      owned.insert(info.directory);
    }
  }
  std::vector<std::string> orphans;
  std::set<std::string> roots = {root_, writable_root_};
  for (const std::string& root : roots) {
    std::string snapshots = root + "/snapshots";
    DIR* dir = ::opendir(snapshots.c_str());
    if (dir == nullptr) return base::ErrnoStatus(errno, "open " + snapshots);
    while (dirent* entry = ::readdir(dir)) {
      std::string name = entry->d_name;
      if (name == "." || name == "..") continue;
      std::string path = snapshots + "/" + name;
      if (!owned.contains(path)) orphans.push_back(path);
    }
    ::closedir(dir);
  }
  for (const std::string& orphan : orphans) {
    if (absl::Status removed = base::RemoveTree(orphan); !removed.ok()) return removed;
  }
  return absl::OkStatus();
}

bool OverlaySupported(const std::string& directory) {
  absl::StatusOr<base::TempDir> probe = base::TempDir::Create("overlay-probe", directory);
  if (!probe.ok()) return false;
  for (const char* sub : {"lower", "upper", "work", "merged"}) {
    if (!base::MakeDirectories(probe->Join(sub), 0755).ok()) return false;
  }
  absl::StatusOr<ScopedMount> mounted =
      ScopedMount::Create({{"overlay",
                            "overlay",
                            {"lowerdir=" + probe->Join("lower"), "upperdir=" + probe->Join("upper"),
                             "workdir=" + probe->Join("work")}}},
                          probe->Join("merged"));
  return mounted.ok();
}

}  // namespace kapal::snapshotter
