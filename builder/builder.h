#pragma once

// builder: runs a Dockerfile into an image in the node's store, for every door (the Docker
// API's classic POST /build and kapalctl build). Each step's result is an image (Docker's
// classic builder model), found again by the layer cache; RUN steps run in real containers
// through the runtime core (kapal-shim + the OCI runtime) on an overlay snapshot of the step
// before, and their changes become a layer.

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/logger.h"
#include "base/temp_dir.h"
#include "builder/build_cache.h"
#include "images/content_store.h"
#include "images/image_store.h"
#include "images/puller.h"
#include "runtime/runtime.h"
#include "snapshotter/snapshotter.h"
#include "store/store.h"

namespace kapal::builder {

struct BuildOptions {
  std::string context_dir;                // the build context, unpacked
  std::string dockerfile = "Dockerfile";  // its path inside the context
  std::vector<std::string> tags;          // NAME[:TAG] for the result
  std::map<std::string, std::string> build_args;
  std::map<std::string, std::string> labels;  // added to the final image
  std::string target;                         // the stage to stop at ("" = the last)
  bool no_cache = false;
  bool pull = false;  // look for a newer FROM image even when one is present
  // RUN's network: "" / "default" / "bridge" (the pod network), "host" or "none".
  std::string network_mode;
  // Credentials for FROM's registry (by registry host, as X-Registry-Config carries them).
  std::map<std::string, images::Credentials> credentials;
};

struct BuildResult {
  std::string image_id;  // sha256:...
  std::vector<std::string> warnings;
};

// `docker commit`: a container's changes as a new image on top of its own.
struct CommitOptions {
  std::string container_id;
  std::string reference;  // NAME[:TAG] for the image; "" leaves it untagged
  std::string comment;
  std::string author;
  // Dockerfile instructions applied to the image's config, as --change gives them: CMD,
  // ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, USER, VOLUME, WORKDIR, STOPSIGNAL.
  std::vector<std::string> changes;
  // A running container is frozen while its changes are read (docker commit --pause, the
  // default).
  bool pause = true;
};

// `docker import`: a root filesystem tar as a one-layer image.
struct ImportOptions {
  std::string tar_path;              // plain, gzip or zstd
  std::string reference;             // NAME[:TAG]; "" leaves it untagged
  std::string comment;               // the history entry's ("Imported from -" when empty)
  std::vector<std::string> changes;  // as CommitOptions::changes
};

// Lines as Docker's classic builder prints them ("Step 2/5 : RUN make", " ---> Using cache",
// RUN's own output); each ends with a newline.
using BuildOutput = std::function<void(const std::string& text)>;
// Polled during the build: true ends it (the client went away) with CANCELLED, leaving nothing.
using BuildCancelled = std::function<bool()>;

// The exit code of the RUN that failed a build, on the status Build returned (nullopt for any
// other failure): Docker sends it as errorDetail.code and its CLI exits with it.
std::optional<int> RunExitCodeOf(const absl::Status& status);

class Builder {
 public:
  Builder(runtime::Runtime& runtime, images::Puller& puller, images::ContentStore& content,
          snapshotter::Snapshotter& snapshots, store::Store& store, std::string scratch_dir,
          base::Logger& logger);

  // Builds OPTIONS' Dockerfile. Dockerfile errors are INVALID_ARGUMENT naming the line; a
  // failing RUN is UNKNOWN-free: FAILED_PRECONDITION "The command '...' returned a non-zero
  // code: N". On any failure no container, pod, snapshot or mount of the build is left; the
  // steps that did finish stay in the cache, as in Docker.
  absl::StatusOr<BuildResult> Build(const BuildOptions& options, const BuildOutput& output,
                                    const BuildCancelled& cancelled = nullptr);

  // The container's writable layer (files it changed, added or deleted) as a layer on its
  // image, with the container's command, environment and working directory in the config and
  // OPTIONS' changes applied. Returns the new image id. NOT_FOUND for an unknown container;
  // INVALID_ARGUMENT for a change that is not allowed. A running container is paused meanwhile
  // unless OPTIONS.pause is false.
  absl::StatusOr<std::string> Commit(const CommitOptions& options);

  // OPTIONS' tar as the only layer of a new image. Returns its id; INVALID_ARGUMENT for a
  // file that is not a tar or a change that is not allowed.
  absl::StatusOr<std::string> Import(const ImportOptions& options);
  // Unpacks a build context tar (plain or compressed) at TAR_PATH into a fresh directory.
  absl::StatusOr<base::TempDir> UnpackContext(const std::string& tar_path);

  // Docker's intermediate images: those cached steps were built on.
  std::set<std::string> IntermediateImages() { return cache_.Parents(); }
  // The image a cached step that made IMAGE_ID was built on (nullopt: no build step made it),
  // and the images cached steps made on IMAGE_ID.
  std::optional<std::string> BuiltOn(const std::string& image_id) {
    return cache_.ParentOf(image_id);
  }
  std::set<std::string> BuiltFrom(const std::string& image_id) {
    return cache_.ChildrenOf(image_id);
  }

  // The key prefix of the snapshots a build mounts; kapald removes leftovers at start.
  static constexpr const char kSnapshotPrefix[] = "build-";

  struct Run;

 private:
  friend struct Run;
  runtime::Runtime& runtime_;
  images::Puller& puller_;
  images::ContentStore& content_;
  snapshotter::Snapshotter& snapshots_;
  BuildCache cache_;
  std::string scratch_dir_;
  base::Logger& logger_;
};

}  // namespace kapal::builder
