#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "store/store.h"

namespace kapal::docker {

// A named volume of the Docker API: a directory ROOT/volumes/NAME/_data, recorded in the store.
struct Volume {
  std::string name;
  std::string driver = "local";
  std::map<std::string, std::string> labels;
  std::map<std::string, std::string> options;
  int64_t created_at = 0;  // seconds since the epoch
  std::string mountpoint;
};

class VolumeStore {
 public:
  VolumeStore(store::Store& store, std::string root) : store_(store), root_(std::move(root)) {}

  // Creates NAME (its directory and record); an existing one is returned as it is (Docker's
  // create is idempotent). INVALID_ARGUMENT for a bad name or a driver other than local.
  absl::StatusOr<Volume> Create(const std::string& name, const std::string& driver,
                                const std::map<std::string, std::string>& labels,
                                const std::map<std::string, std::string>& options);
  absl::StatusOr<Volume> Get(const std::string& name);
  absl::StatusOr<std::vector<Volume>> List();
  // Removes the record and the directory with all it holds. The caller checks use.
  absl::Status Remove(const std::string& name);
  // The directory a container mounts for NAME.
  std::string DataPath(const std::string& name) const;

 private:
  store::Store& store_;
  std::string root_;  // ROOT/volumes
  std::mutex mutex_;
};

}  // namespace kapal::docker
