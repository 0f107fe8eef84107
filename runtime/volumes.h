#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "runtime/journal.h"
#include "store/store.h"

namespace kapal::runtime {

// A named volume, a node object every door shows (Docker's `volume`, kapalctl): a directory
// ROOT/volumes/NAME/_data, recorded in the store (table docker_volumes, named for the door
// that came first).
struct Volume {
  std::string name;
  std::string driver = "local";
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> options;
  int64_t created_at = 0;  // seconds since the epoch
  std::string mountpoint;
};

class Volumes {
 public:
  // JOURNAL (may be null) is told of creations and removals.
  Volumes(store::Store& store, std::string root, Journal* journal = nullptr)
      : store_(store), root_(std::move(root)), journal_(journal) {}

  // Creates NAME (its directory and record); an existing one is returned as it is (Docker's
  // create is idempotent). INVALID_ARGUMENT for a bad name or a driver other than local.
  absl::StatusOr<Volume> Create(const std::string& name, const std::string& driver,
                                const std::map<std::string, std::string>& labels,
                                const std::map<std::string, std::string>& options);
  absl::StatusOr<Volume> Get(const std::string& name);
  absl::StatusOr<std::vector<Volume>> List();
  // Removes the record and the directory with all it holds. The caller checks use
  // (Runtime::RemoveVolume does).
  absl::Status Remove(const std::string& name);
  // The directory a container mounts for NAME.
  std::string DataPath(const std::string& name) const;

 private:
  void Tell(const std::string& action, const std::string& name);

  store::Store& store_;
  std::string root_;  // ROOT/volumes
  Journal* journal_;
  std::mutex mutex_;
};

}  // namespace kapal::runtime
