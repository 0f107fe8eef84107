#include "images/image_store.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "images/manifest.h"

namespace kapal::images {

namespace {

// Reads the image row the statement is on (columns in the order of kImageColumns).
constexpr char kImageColumns[] =
    "id, manifest_digest, media_type, size, chain_id, config_json, created_at";

absl::StatusOr<ImageRecord> ReadRow(SQLite::Statement& row) {
  absl::StatusOr<Digest> id = Digest::Parse(row.getColumn(0).getString());
  absl::StatusOr<Digest> manifest = Digest::Parse(row.getColumn(1).getString());
  absl::StatusOr<Digest> chain = Digest::Parse(row.getColumn(4).getString());
  if (!id.ok() || !manifest.ok() || !chain.ok()) {
    return absl::DataLossError(
        absl::StrCat("image row ", row.getColumn(0).getString(), " is damaged"));
  }
  return ImageRecord{*id,
                     *manifest,
                     row.getColumn(2).getString(),
                     row.getColumn(3).getInt64(),
                     *chain,
                     row.getColumn(5).getString(),
                     row.getColumn(6).getInt64(),
                     {},
                     {},
                     {}};
}

void FillReferences(SQLite::Database& db, ImageRecord& image) {
  SQLite::Statement references(
      db, "SELECT reference, kind FROM image_references WHERE image_id = ? ORDER BY reference");
  references.bind(1, image.id.String());
  while (references.executeStep()) {
    (references.getColumn(1).getString() == "tag" ? image.repo_tags : image.repo_digests)
        .push_back(references.getColumn(0).getString());
  }
  SQLite::Statement blobs(db, "SELECT digest FROM image_blobs WHERE image_id = ? ORDER BY digest");
  blobs.bind(1, image.id.String());
  while (blobs.executeStep()) {
    if (auto digest = Digest::Parse(blobs.getColumn(0).getString()); digest.ok()) {
      image.blobs.push_back(*digest);
    }
  }
}

bool IsHex(absl::string_view text) {
  return !text.empty() && text.find_first_not_of("0123456789abcdef") == absl::string_view::npos;
}

}  // namespace

absl::Status ImageStore::Put(const ImageRecord& image) {
  return store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Transaction transaction(db);
    SQLite::Statement upsert(
        db,
        absl::StrCat("INSERT INTO images(", kImageColumns,
                     ") VALUES(?, ?, ?, ?, ?, ?, ?) "
                     "ON CONFLICT(id) DO UPDATE SET manifest_digest = excluded.manifest_digest, "
                     "media_type = excluded.media_type, size = excluded.size, "
                     "chain_id = excluded.chain_id, config_json = excluded.config_json"));
    upsert.bind(1, image.id.String());
    upsert.bind(2, image.manifest_digest.String());
    upsert.bind(3, image.media_type);
    upsert.bind(4, image.size);
    upsert.bind(5, image.top_chain_id.String());
    upsert.bind(6, image.config_json);
    upsert.bind(7, image.created_at);
    upsert.exec();
    auto point = [&](const std::string& reference, const char* kind) {
      SQLite::Statement insert(
          db,
          "INSERT INTO image_references(reference, image_id, kind) VALUES(?, ?, ?) "
          "ON CONFLICT(reference) DO UPDATE SET image_id = excluded.image_id");
      insert.bind(1, reference);
      insert.bind(2, image.id.String());
      insert.bind(3, kind);
      insert.exec();
    };
    for (const std::string& tag : image.repo_tags) point(tag, "tag");
    for (const std::string& digest : image.repo_digests) point(digest, "digest");
    for (const Digest& blob : image.blobs) {
      SQLite::Statement insert(db,
                               "INSERT OR IGNORE INTO image_blobs(image_id, digest) VALUES(?, ?)");
      insert.bind(1, image.id.String());
      insert.bind(2, blob.String());
      insert.exec();
    }
    transaction.commit();
  });
}

absl::StatusOr<ImageRecord> ImageStore::Get(const Digest& id) {
  std::optional<absl::StatusOr<ImageRecord>> found;
  absl::Status status = store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement query(db,
                            absl::StrCat("SELECT ", kImageColumns, " FROM images WHERE id = ?"));
    query.bind(1, id.String());
    if (!query.executeStep()) return;
    found = ReadRow(query);
    if (found->ok()) FillReferences(db, **found);
  });
  if (!status.ok()) return status;
  if (!found) return absl::NotFoundError(absl::StrCat("image ", id.String(), " not found"));
  return *found;
}

absl::StatusOr<ImageRecord> ImageStore::Find(const std::string& id_or_reference) {
  std::string text = id_or_reference;
  // An id: sha256:<hex>, or hex alone (full, or a prefix of 12 or more as crictl shows).
  std::string hex = absl::StartsWith(text, "sha256:") ? text.substr(7) : text;
  if (IsHex(hex) && (absl::StartsWith(text, "sha256:") || hex.size() >= 12)) {
    std::vector<std::string> matches;
    absl::Status status = store_.WithDatabase([&](SQLite::Database& db) {
      SQLite::Statement query(db, "SELECT id FROM images WHERE id >= ? AND id < ? LIMIT 2");
      query.bind(1, "sha256:" + hex);
      query.bind(2, "sha256:" + hex + "g");
      while (query.executeStep()) matches.push_back(query.getColumn(0).getString());
    });
    if (!status.ok()) return status;
    if (matches.size() == 1) return Get(*Digest::Parse(matches.front()));
    if (matches.size() > 1) {
      return absl::InvalidArgumentError(absl::StrCat("image id prefix \"", hex, "\" is ambiguous"));
    }
    if (absl::StartsWith(text, "sha256:") || hex.size() == 64) {
      return absl::NotFoundError(absl::StrCat("image ", text, " not found"));
    }
  }
  absl::StatusOr<Reference> reference = ParseReference(text);
  if (!reference.ok()) return reference.status();
  // A name:tag@digest reference is found by its digest, as the digest is what was pulled.
  std::string key = reference->digest
                        ? absl::StrCat(reference->Name(), "@", reference->digest->String())
                        : reference->Canonical();
  std::optional<std::string> id;
  absl::Status status = store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement query(db, "SELECT image_id FROM image_references WHERE reference = ?");
    query.bind(1, key);
    if (query.executeStep()) id = query.getColumn(0).getString();
  });
  if (!status.ok()) return status;
  if (!id) return absl::NotFoundError(absl::StrCat("image \"", text, "\" not found (", key, ")"));
  return Get(*Digest::Parse(*id));
}

std::vector<ImageRecord> ImageStore::List() {
  std::vector<ImageRecord> images;
  (void)store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement query(
        db, absl::StrCat("SELECT ", kImageColumns, " FROM images ORDER BY created_at, id"));
    while (query.executeStep()) {
      absl::StatusOr<ImageRecord> image = ReadRow(query);
      if (!image.ok()) continue;
      FillReferences(db, *image);
      images.push_back(std::move(*image));
    }
  });
  return images;
}

absl::StatusOr<int> ImageStore::Untag(const Reference& tag_reference) {
  std::string key = tag_reference.Canonical();
  std::optional<int> remaining;
  absl::Status status = store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Transaction transaction(db);
    SQLite::Statement find(
        db, "SELECT image_id FROM image_references WHERE reference = ? AND kind = 'tag'");
    find.bind(1, key);
    if (!find.executeStep()) return;
    std::string image_id = find.getColumn(0).getString();
    SQLite::Statement remove(db, "DELETE FROM image_references WHERE reference = ?");
    remove.bind(1, key);
    remove.exec();
    SQLite::Statement tags(
        db, "SELECT COUNT(*) FROM image_references WHERE image_id = ? AND kind = 'tag'");
    tags.bind(1, image_id);
    tags.executeStep();
    remaining = tags.getColumn(0).getInt();
    transaction.commit();
  });
  if (!status.ok()) return status;
  if (!remaining) return absl::NotFoundError(absl::StrCat("no image is tagged ", key));
  return *remaining;
}

absl::Status ImageStore::Remove(const Digest& id) {
  return store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Transaction transaction(db);
    for (const char* sql :
         {"DELETE FROM image_references WHERE image_id = ?",
          "DELETE FROM image_blobs WHERE image_id = ?", "DELETE FROM images WHERE id = ?"}) {
      SQLite::Statement statement(db, sql);
      statement.bind(1, id.String());
      statement.exec();
    }
    transaction.commit();
  });
}

std::vector<Digest> ImageStore::UnusedBlobs(const std::vector<Digest>& candidates) {
  std::vector<Digest> unused;
  (void)store_.WithDatabase([&](SQLite::Database& db) {
    for (const Digest& digest : candidates) {
      SQLite::Statement query(db, "SELECT 1 FROM image_blobs WHERE digest = ? LIMIT 1");
      query.bind(1, digest.String());
      if (!query.executeStep()) unused.push_back(digest);
    }
  });
  return unused;
}

std::vector<Digest> ImageStore::ChainIdsInUse() {
  std::set<Digest> in_use;
  for (const ImageRecord& image : List()) {
    absl::StatusOr<ImageConfig> config = ParseImageConfig(image.config_json);
    if (!config.ok()) continue;
    for (const Digest& chain_id : ChainIds(config->diff_ids)) in_use.insert(chain_id);
  }
  return {in_use.begin(), in_use.end()};
}

}  // namespace kapal::images
