#include "runtime/volumes.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include <ctime>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "nlohmann/json.hpp"

namespace kapal::runtime {

namespace {

absl::Status CheckName(const std::string& name) {
  bool valid = !name.empty() && name.size() <= 255 && absl::ascii_isalnum(name[0]);
  for (char c : name) {
    if (!absl::ascii_isalnum(c) && c != '_' && c != '.' && c != '-') valid = false;
  }
  if (!valid) {
    return absl::InvalidArgumentError(absl::StrCat(
        "volume name \"", name, "\" is invalid: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"));
  }
  return absl::OkStatus();
}

std::map<std::string, std::string> MapFromJson(const std::string& text) {
  std::map<std::string, std::string> values;
  nlohmann::json parsed = nlohmann::json::parse(text, nullptr, false);
  if (!parsed.is_object()) return values;
  for (const auto& [key, value] : parsed.items()) {
    if (value.is_string()) values[key] = value.get<std::string>();
  }
  return values;
}

}  // namespace

std::string Volumes::DataPath(const std::string& name) const {
  return absl::StrCat(root_, "/", name, "/_data");
}

absl::StatusOr<Volume> Volumes::Create(const std::string& name, const std::string& driver,
                                       const std::map<std::string, std::string>& labels,
                                       const std::map<std::string, std::string>& options) {
  if (absl::Status checked = CheckName(name); !checked.ok()) return checked;
  if (!driver.empty() && driver != "local") {
    return absl::InvalidArgumentError(
        absl::StrCat("volume driver \"", driver, "\": kapal has only the local driver"));
  }
  if (!options.empty()) {
    return absl::InvalidArgumentError(
        "volume options (--opt) are not supported by kapal's local driver yet");
  }
  std::lock_guard lock(mutex_);
  absl::StatusOr<Volume> existing = Get(name);
  if (existing.ok()) return existing;
  if (!absl::IsNotFound(existing.status())) return existing.status();
  // The directory first: a record never names a volume that has no directory.
  if (absl::Status made = base::MakeDirectories(root_, 0700); !made.ok()) return made;
  if (absl::Status made = base::MakeDirectories(DataPath(name), 0755); !made.ok()) return made;
  Volume volume;
  volume.name = name;
  volume.labels = labels;
  volume.created_at = static_cast<int64_t>(std::time(nullptr));
  volume.mountpoint = DataPath(name);
  absl::Status saved = store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement insert(db,
                             "INSERT INTO docker_volumes (name, driver, labels, options, "
                             "created_at) VALUES (?, 'local', ?, '{}', ?)");
    insert.bind(1, name);
    insert.bind(2, nlohmann::json(labels).dump());
    insert.bind(3, static_cast<int64_t>(volume.created_at));
    insert.exec();
  });
  if (!saved.ok()) return saved;
  Tell("create", name);
  return volume;
}

void Volumes::Tell(const std::string& action, const std::string& name) {
  if (journal_ == nullptr) return;
  journal_->Publish("volume", action, name, {{"driver", "local"}});
}

absl::StatusOr<Volume> Volumes::Get(const std::string& name) {
  std::optional<Volume> found;
  absl::Status read = store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement query(
        db, "SELECT driver, labels, options, created_at FROM docker_volumes WHERE name = ?");
    query.bind(1, name);
    if (query.executeStep()) {
      Volume volume;
      volume.name = name;
      volume.driver = query.getColumn(0).getString();
      volume.labels = MapFromJson(query.getColumn(1).getString());
      volume.options = MapFromJson(query.getColumn(2).getString());
      volume.created_at = query.getColumn(3).getInt64();
      volume.mountpoint = DataPath(name);
      found = volume;
    }
  });
  if (!read.ok()) return read;
  if (!found.has_value()) return absl::NotFoundError(absl::StrCat("no such volume: ", name));
  return *found;
}

absl::StatusOr<std::vector<Volume>> Volumes::List() {
  std::vector<Volume> volumes;
  absl::Status read = store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement query(
        db, "SELECT name, driver, labels, options, created_at FROM docker_volumes ORDER BY name");
    while (query.executeStep()) {
      Volume volume;
      volume.name = query.getColumn(0).getString();
      volume.driver = query.getColumn(1).getString();
      volume.labels = MapFromJson(query.getColumn(2).getString());
      volume.options = MapFromJson(query.getColumn(3).getString());
      volume.created_at = query.getColumn(4).getInt64();
      volume.mountpoint = DataPath(volume.name);
      volumes.push_back(std::move(volume));
    }
  });
  if (!read.ok()) return read;
  return volumes;
}

absl::Status Volumes::Remove(const std::string& name) {
  if (absl::Status checked = CheckName(name); !checked.ok()) return checked;
  std::lock_guard lock(mutex_);
  absl::StatusOr<Volume> existing = Get(name);
  if (!existing.ok()) return existing.status();
  // The record first: a crash in between leaves a directory without a record, which a later
  // create of the same name takes over, never a record without its data.
  absl::Status deleted = store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement remove(db, "DELETE FROM docker_volumes WHERE name = ?");
    remove.bind(1, name);
    remove.exec();
  });
  if (!deleted.ok()) return deleted;
  Tell("destroy", name);
  return base::RemoveTree(absl::StrCat(root_, "/", name));
}

}  // namespace kapal::runtime
