#include "store/store.h"

namespace kapal::store {

// Append new steps at the end; never edit a step that has been released, since databases in the
// field have already applied it.
const std::vector<Migration>& SchemaMigrations() {
  static const std::vector<Migration> kMigrations = {
      {1, "initial tables: settings, content, images, snapshots, pods, containers", R"sql(
CREATE TABLE settings (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
);

-- Blobs in the content store, by digest. A row exists only once the blob's size and digest have
-- been checked and the file renamed into place.
CREATE TABLE content (
  digest     TEXT PRIMARY KEY,
  size       INTEGER NOT NULL,
  media_type TEXT NOT NULL DEFAULT '',
  created_at INTEGER NOT NULL
);

-- An image is its config digest (the CRI image id); references name it.
CREATE TABLE images (
  id              TEXT PRIMARY KEY,
  manifest_digest TEXT NOT NULL,
  media_type      TEXT NOT NULL DEFAULT '',
  size            INTEGER NOT NULL DEFAULT 0,
  chain_id        TEXT NOT NULL DEFAULT '',
  config_json     TEXT NOT NULL DEFAULT '{}',
  created_at      INTEGER NOT NULL
);

CREATE TABLE image_references (
  reference TEXT PRIMARY KEY,
  image_id  TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  kind      TEXT NOT NULL CHECK (kind IN ('tag', 'digest'))
);
CREATE INDEX image_references_by_image ON image_references(image_id);

-- Snapshots as containerd's snapshotter has them: active (writable, being prepared), view
-- (read-only), committed (an unpacked layer, keyed by chain id).
CREATE TABLE snapshots (
  key        TEXT PRIMARY KEY,
  parent     TEXT REFERENCES snapshots(key),
  kind       TEXT NOT NULL CHECK (kind IN ('active', 'view', 'committed')),
  directory  TEXT NOT NULL,
  size       INTEGER NOT NULL DEFAULT 0,
  inodes     INTEGER NOT NULL DEFAULT 0,
  labels     TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL
);
CREATE INDEX snapshots_by_parent ON snapshots(parent);

CREATE TABLE pods (
  id              TEXT PRIMARY KEY,
  name            TEXT NOT NULL,
  namespace       TEXT NOT NULL,
  uid             TEXT NOT NULL,
  attempt         INTEGER NOT NULL,
  state           TEXT NOT NULL,
  runtime_handler TEXT NOT NULL DEFAULT '',
  netns_path      TEXT NOT NULL DEFAULT '',
  ips             TEXT NOT NULL DEFAULT '[]',
  config          BLOB NOT NULL,
  created_at      INTEGER NOT NULL
);
CREATE UNIQUE INDEX pods_by_name ON pods(namespace, name, uid, attempt);

CREATE TABLE containers (
  id           TEXT PRIMARY KEY,
  pod_id       TEXT NOT NULL REFERENCES pods(id),
  name         TEXT NOT NULL,
  attempt      INTEGER NOT NULL,
  image_id     TEXT NOT NULL,
  image_ref    TEXT NOT NULL DEFAULT '',
  state        TEXT NOT NULL,
  snapshot_key TEXT NOT NULL DEFAULT '',
  log_path     TEXT NOT NULL DEFAULT '',
  shim_pid     INTEGER NOT NULL DEFAULT 0,
  exit_code    INTEGER NOT NULL DEFAULT 0,
  reason       TEXT NOT NULL DEFAULT '',
  message      TEXT NOT NULL DEFAULT '',
  config       BLOB NOT NULL,
  created_at   INTEGER NOT NULL,
  started_at   INTEGER NOT NULL DEFAULT 0,
  finished_at  INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX containers_by_name ON containers(pod_id, name, attempt);
)sql"},
      {2, "image_blobs: which content blobs each image holds, for garbage collection", R"sql(
CREATE TABLE image_blobs (
  image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  digest   TEXT NOT NULL,
  PRIMARY KEY (image_id, digest)
);
CREATE INDEX image_blobs_by_digest ON image_blobs(digest);
)sql"},
      {3, "pods keep their CNI result; containers their stop signal", R"sql(
ALTER TABLE pods ADD COLUMN cni_result TEXT NOT NULL DEFAULT '';
ALTER TABLE containers ADD COLUMN stop_signal INTEGER NOT NULL DEFAULT 15;
)sql"},
      {4, "docker_volumes: the Docker API's named volumes", R"sql(
CREATE TABLE docker_volumes (
  name       TEXT PRIMARY KEY,
  driver     TEXT NOT NULL DEFAULT 'local',
  labels     TEXT NOT NULL DEFAULT '{}',
  options    TEXT NOT NULL DEFAULT '{}',
  created_at INTEGER NOT NULL
);
)sql"},
      {5, "build_cache: each build step's image, by its parent image and the step", R"sql(
CREATE TABLE build_cache (
  parent     TEXT NOT NULL,
  key        TEXT NOT NULL,
  image_id   TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  PRIMARY KEY (parent, key)
);
)sql"},
      {6, "snapshots: the boot during which a committed tree was not yet known to be on disk",
       R"sql(
ALTER TABLE snapshots ADD COLUMN unsynced_boot TEXT NOT NULL DEFAULT '';
)sql"},
  };
  return kMigrations;
}

}  // namespace kapal::store
