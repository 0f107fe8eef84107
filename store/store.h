#pragma once

// store: kapald's SQLite database (WAL, synchronous=FULL) and its numbered schema migrations.
// Components keep their own tables through it; it holds no container or image logic itself.

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace SQLite {
class Database;
}

namespace kapal::store {

// One step of the schema. Steps are numbered from 1 without gaps; a database records the number
// of the last step applied (PRAGMA user_version) and Open applies the ones after it.
struct Migration {
  int version;
  absl::string_view description;
  absl::string_view sql;
};

// The schema of this build of kapal, every step since the first.
const std::vector<Migration>& SchemaMigrations();

// kapald's persistent state: one SQLite database in WAL mode with synchronous=FULL, so anything
// reported to a client has reached the disk first and a crash at any point leaves a database that
// the next start reads back. Every component keeps its tables here (pods, containers, images,
// snapshots, content) so that one transaction can change several of them together.
class Store {
 public:
  // Opens (creating if missing) the database at PATH and brings it up to the newest schema.
  // A database written by a newer kapal is refused (FAILED_PRECONDITION) and one that is not a
  // database or fails SQLite's integrity check is reported (DATA_LOSS), never recreated, since
  // recreating it would silently forget every pod and image on the node.
  static absl::StatusOr<std::unique_ptr<Store>> Open(
      const std::string& path, const std::vector<Migration>& migrations = SchemaMigrations());

  ~Store();
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;

  int SchemaVersion();
  const std::string& Path() const { return path_; }

  // Small named values (the pod CIDR from kubelet, ...), kept in the `settings` table.
  absl::StatusOr<std::optional<std::string>> GetSetting(absl::string_view key);
  absl::Status PutSetting(absl::string_view key, absl::string_view value);

  // Runs FN with the database under the store's lock; components use it for their own tables.
  // SQLiteCpp reports errors by exception; they are caught here and returned as INTERNAL.
  absl::Status WithDatabase(const std::function<void(SQLite::Database&)>& fn);

 private:
  Store(std::string path, std::unique_ptr<SQLite::Database> db);

  std::string path_;
  std::mutex mutex_;
  std::unique_ptr<SQLite::Database> db_;
};

}  // namespace kapal::store
