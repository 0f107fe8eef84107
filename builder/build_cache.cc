#include "builder/build_cache.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include "runtime/records.h"

namespace kapal::builder {

std::optional<std::string> BuildCache::Lookup(const std::string& parent, const std::string& key) {
  std::optional<std::string> found;
  (void)store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement query(db, "SELECT image_id FROM build_cache WHERE parent = ? AND key = ?");
    query.bind(1, parent);
    query.bind(2, key);
    if (query.executeStep()) found = query.getColumn(0).getString();
  });
  return found;
}

absl::Status BuildCache::Record(const std::string& parent, const std::string& key,
                                const std::string& image_id) {
  return store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement upsert(db,
                             "INSERT INTO build_cache(parent, key, image_id, created_at) "
                             "VALUES(?, ?, ?, ?) ON CONFLICT(parent, key) DO UPDATE SET "
                             "image_id = excluded.image_id, created_at = excluded.created_at");
    upsert.bind(1, parent);
    upsert.bind(2, key);
    upsert.bind(3, image_id);
    upsert.bind(4, static_cast<int64_t>(runtime::NowNanos()));
    upsert.exec();
  });
}

std::set<std::string> BuildCache::Parents() {
  std::set<std::string> parents;
  (void)store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement query(db, "SELECT DISTINCT parent FROM build_cache");
    while (query.executeStep()) parents.insert(query.getColumn(0).getString());
  });
  return parents;
}

std::optional<std::string> BuildCache::ParentOf(const std::string& image_id) {
  std::optional<std::string> parent;
  (void)store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement query(db, "SELECT parent FROM build_cache WHERE image_id = ? LIMIT 1");
    query.bind(1, image_id);
    if (query.executeStep()) parent = query.getColumn(0).getString();
  });
  return parent;
}

std::set<std::string> BuildCache::ChildrenOf(const std::string& image_id) {
  std::set<std::string> children;
  (void)store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement query(db, "SELECT DISTINCT image_id FROM build_cache WHERE parent = ?");
    query.bind(1, image_id);
    while (query.executeStep()) children.insert(query.getColumn(0).getString());
  });
  return children;
}

}  // namespace kapal::builder
