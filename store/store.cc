#include "store/store.h"

#include <SQLiteCpp/SQLiteCpp.h>
#include <sqlite3.h>

#include "absl/strings/str_cat.h"

namespace kapal::store {

namespace {

// SQLite's "not a database" and "malformed" mean the file is damaged; anything else (locked,
// permission, full disk) is a condition the operator fixes without losing data.
bool IsCorruption(const SQLite::Exception& e) {
  int code = e.getErrorCode() & 0xff;
  return code == SQLITE_NOTADB || code == SQLITE_CORRUPT;
}

absl::Status Migrate(SQLite::Database& db, const std::string& path,
                     const std::vector<Migration>& migrations) {
  int newest = migrations.empty() ? 0 : migrations.back().version;
  for (size_t i = 0; i < migrations.size(); ++i) {
    if (migrations[i].version != static_cast<int>(i) + 1) {
      return absl::InternalError("schema migrations are not numbered 1, 2, 3, ...");
    }
  }
  int current = db.execAndGet("PRAGMA user_version").getInt();
  if (current > newest) {
    return absl::FailedPreconditionError(
        absl::StrCat("database ", path, " has schema version ", current,
                     " but this kapald knows versions up to ", newest,
                     ": it was written by a newer kapal; run that version (or newer) instead"));
  }
  for (const Migration& migration : migrations) {
    if (migration.version <= current) continue;
    SQLite::Transaction transaction(db);
    db.exec(std::string(migration.sql));
    db.exec(absl::StrCat("PRAGMA user_version = ", migration.version));
    transaction.commit();
  }
  return absl::OkStatus();
}

}  // namespace

Store::Store(std::string path, std::unique_ptr<SQLite::Database> db)
    : path_(std::move(path)), db_(std::move(db)) {}

Store::~Store() = default;

absl::StatusOr<std::unique_ptr<Store>> Store::Open(const std::string& path,
                                                   const std::vector<Migration>& migrations) {
  try {
    auto db = std::make_unique<SQLite::Database>(
        path, SQLite::OPEN_READWRITE | SQLite::OPEN_CREATE | SQLite::OPEN_FULLMUTEX);
    db->setBusyTimeout(5000);
    std::string mode = db->execAndGet("PRAGMA journal_mode = WAL").getString();
    if (mode != "wal") {
      return absl::FailedPreconditionError(
          absl::StrCat("database ", path, ": cannot switch to WAL journal mode (got ", mode, ")"));
    }
    db->exec("PRAGMA synchronous = FULL");
    db->exec("PRAGMA foreign_keys = ON");
    std::string check = db->execAndGet("PRAGMA quick_check").getString();
    if (check != "ok") {
      return absl::DataLossError(absl::StrCat(
          "database ", path, " is corrupt (", check,
          "); kapald will not recreate it, since that would forget every pod and image: "
          "restore it from a backup, or move it away to start with an empty state"));
    }
    if (absl::Status status = Migrate(*db, path, migrations); !status.ok()) return status;
    return std::unique_ptr<Store>(new Store(path, std::move(db)));
  } catch (const SQLite::Exception& e) {
    if (IsCorruption(e)) {
      return absl::DataLossError(absl::StrCat(
          "database ", path, " is not a readable SQLite database (", e.what(),
          "); kapald will not recreate it, since that would forget every pod and image: "
          "restore it from a backup, or move it away to start with an empty state"));
    }
    return absl::UnavailableError(absl::StrCat("open database ", path, ": ", e.what()));
  }
}

absl::Status Store::WithDatabase(const std::function<void(SQLite::Database&)>& fn) {
  std::lock_guard lock(mutex_);
  try {
    fn(*db_);
    return absl::OkStatus();
  } catch (const SQLite::Exception& e) {
    return absl::InternalError(absl::StrCat("database ", path_, ": ", e.what()));
  }
}

int Store::SchemaVersion() {
  int version = 0;
  (void)WithDatabase(
      [&](SQLite::Database& db) { version = db.execAndGet("PRAGMA user_version").getInt(); });
  return version;
}

absl::StatusOr<std::optional<std::string>> Store::GetSetting(absl::string_view key) {
  std::optional<std::string> value;
  absl::Status status = WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement query(db, "SELECT value FROM settings WHERE key = ?");
    query.bind(1, std::string(key));
    if (query.executeStep()) value = query.getColumn(0).getString();
  });
  if (!status.ok()) return status;
  return value;
}

absl::Status Store::PutSetting(absl::string_view key, absl::string_view value) {
  return WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement upsert(db,
                             "INSERT INTO settings(key, value) VALUES(?, ?) "
                             "ON CONFLICT(key) DO UPDATE SET value = excluded.value");
    upsert.bind(1, std::string(key));
    upsert.bind(2, std::string(value));
    upsert.exec();
  });
}

}  // namespace kapal::store
