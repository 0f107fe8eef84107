#pragma once

#include <optional>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "store/store.h"

namespace kapal::builder {

// The layer cache of builds, as Docker's classic builder has it: each step's result is an
// image, found again by its parent image and the step (its instruction after expansion, and for
// COPY/ADD the checksum of what was copied). Kept in the store's build_cache table.
class BuildCache {
 public:
  explicit BuildCache(store::Store& store) : store_(store) {}

  std::optional<std::string> Lookup(const std::string& parent, const std::string& key);
  absl::Status Record(const std::string& parent, const std::string& key,
                      const std::string& image_id);
  // Images that other cached steps were built on: Docker's "intermediate" images, which
  // `docker images` leaves out unless asked for all.
  std::set<std::string> Parents();
  // The image the cached step that made IMAGE_ID was built on; nullopt when no cached step
  // made it (a pulled or imported image, a build's FROM).
  std::optional<std::string> ParentOf(const std::string& image_id);
  // The images cached steps made on top of IMAGE_ID.
  std::set<std::string> ChildrenOf(const std::string& image_id);

 private:
  store::Store& store_;
};

}  // namespace kapal::builder
