#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace kapal::base {

// A fresh directory removed with everything in it when the object goes out of scope.
class TempDir {
 public:
  // Creates BASE/PREFIX.XXXXXX (BASE defaults to $TMPDIR or /tmp).
  static absl::StatusOr<TempDir> Create(const std::string& prefix, std::string base = "");

  TempDir(TempDir&& other) noexcept : path_(std::move(other.path_)) { other.path_.clear(); }
  TempDir& operator=(TempDir&& other) noexcept;
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir();

  const std::string& Path() const { return path_; }
  std::string Join(const std::string& name) const { return path_ + "/" + name; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// rm -rf that stays on one filesystem: it never descends into a mount point, so a leftover
// bind mount inside a test directory cannot make it delete the host's files.
absl::Status RemoveTree(const std::string& path);

}  // namespace kapal::base
