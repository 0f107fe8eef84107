#include "store/store.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include "base/files.h"
#include "base/temp_dir.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kapal::store {
namespace {

using ::testing::HasSubstr;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto dir = base::TempDir::Create("kapal-store");
    ASSERT_TRUE(dir.ok());
    dir_.emplace(std::move(*dir));
    path_ = dir_->Join("kapal.db");
  }
  std::optional<base::TempDir> dir_;
  std::string path_;
};

TEST_F(StoreTest, FreshDatabaseGetsTheWholeSchemaInWalMode) {
  auto store = Store::Open(path_);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->SchemaVersion(), SchemaMigrations().back().version);
  std::vector<std::string> tables;
  std::string journal;
  ASSERT_TRUE((*store)
                  ->WithDatabase([&](SQLite::Database& db) {
                    SQLite::Statement query(
                        db, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name");
                    while (query.executeStep()) tables.push_back(query.getColumn(0).getString());
                    journal = db.execAndGet("PRAGMA journal_mode").getString();
                  })
                  .ok());
  EXPECT_THAT(tables, ::testing::IsSupersetOf({"containers", "content", "image_references",
                                               "images", "pods", "settings", "snapshots"}));
  EXPECT_EQ(journal, "wal");
}

TEST_F(StoreTest, SettingsPersistAcrossReopen) {
  {
    auto store = Store::Open(path_);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE((*store)->PutSetting("pod_cidr", "10.88.0.0/16").ok());
    ASSERT_TRUE((*store)->PutSetting("pod_cidr", "10.89.0.0/16").ok());
  }
  auto store = Store::Open(path_);
  ASSERT_TRUE(store.ok());
  auto value = (*store)->GetSetting("pod_cidr");
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(value->value_or(""), "10.89.0.0/16");
  EXPECT_FALSE((*store)->GetSetting("absent")->has_value());
}

TEST_F(StoreTest, UpgradeAppliesOnlyTheNewStepsAndKeepsData) {
  const std::vector<Migration> v1 = {{1, "t", "CREATE TABLE t (x INTEGER);"}};
  const std::vector<Migration> v2 = {{1, "t", "CREATE TABLE t (x INTEGER);"},
                                     {2, "t.y", "ALTER TABLE t ADD COLUMN y TEXT DEFAULT 'new';"}};
  {
    auto store = Store::Open(path_, v1);
    ASSERT_TRUE(store.ok()) << store.status();
    ASSERT_TRUE(
        (*store)
            ->WithDatabase([](SQLite::Database& db) { db.exec("INSERT INTO t(x) VALUES (42)"); })
            .ok());
  }
  auto store = Store::Open(path_, v2);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->SchemaVersion(), 2);
  std::string y;
  int x = 0;
  ASSERT_TRUE((*store)
                  ->WithDatabase([&](SQLite::Database& db) {
                    SQLite::Statement query(db, "SELECT x, y FROM t");
                    ASSERT_TRUE(query.executeStep());
                    x = query.getColumn(0).getInt();
                    y = query.getColumn(1).getString();
                  })
                  .ok());
  EXPECT_EQ(x, 42);
  EXPECT_EQ(y, "new");
}

TEST_F(StoreTest, FailedStepLeavesTheDatabaseAtThePreviousVersion) {
  const std::vector<Migration> v1 = {{1, "t", "CREATE TABLE t (x INTEGER);"}};
  const std::vector<Migration> broken = {{1, "t", "CREATE TABLE t (x INTEGER);"},
                                         {2, "bad", "CREATE TABLE u (a); NOT SQL;"}};
  ASSERT_TRUE(Store::Open(path_, v1).ok());
  auto failed = Store::Open(path_, broken);
  EXPECT_FALSE(failed.ok());
  auto store = Store::Open(path_, v1);
  ASSERT_TRUE(store.ok());
  EXPECT_EQ((*store)->SchemaVersion(), 1);
  bool has_u = true;
  ASSERT_TRUE(
      (*store)->WithDatabase([&](SQLite::Database& db) { has_u = db.tableExists("u"); }).ok());
  EXPECT_FALSE(has_u) << "the failed step's first statement was rolled back";
}

TEST_F(StoreTest, DatabaseFromANewerVersionIsRefused) {
  const std::vector<Migration> v2 = {{1, "t", "CREATE TABLE t (x INTEGER);"},
                                     {2, "u", "CREATE TABLE u (x INTEGER);"}};
  ASSERT_TRUE(Store::Open(path_, v2).ok());
  auto store = Store::Open(path_, {{1, "t", "CREATE TABLE t (x INTEGER);"}});
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr("schema version 2"));
  EXPECT_THAT(store.status().message(), HasSubstr("newer"));
}

TEST_F(StoreTest, FileThatIsNotADatabaseIsReportedAndLeftAlone) {
  std::string garbage(8192, 'x');
  ASSERT_TRUE(base::WriteFileAtomically(path_, garbage).ok());
  auto store = Store::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(store.status().message(), HasSubstr(path_));
  EXPECT_EQ(base::ReadFile(path_).value_or(""), garbage) << "never recreated";
}

TEST_F(StoreTest, DamagedPagesAreReportedAsCorrupt) {
  {
    auto store = Store::Open(path_);
    ASSERT_TRUE(store.ok());
    ASSERT_TRUE(
        (*store)
            ->WithDatabase([](SQLite::Database& db) { db.exec("PRAGMA wal_checkpoint(TRUNCATE)"); })
            .ok());
  }
  // Overwrite everything after the header page (the schema's b-tree pages) with noise.
  auto content = base::ReadFile(path_);
  ASSERT_TRUE(content.ok());
  ASSERT_GT(content->size(), 8192u);
  for (size_t i = 4096; i < content->size(); ++i) (*content)[i] = static_cast<char>(i * 7);
  ASSERT_TRUE(base::WriteFileAtomically(path_, *content).ok());
  auto store = Store::Open(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss) << store.status();
}

}  // namespace
}  // namespace kapal::store
