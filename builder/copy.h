#pragma once

// COPY and ADD's file work: sources matched in the build context (or another stage's tree),
// copied into a step's root filesystem without ever leaving it, with Docker's rules for
// directories, owners and modes.

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace kapal::builder {

struct Owner {
  uid_t uid = 0;
  gid_t gid = 0;
};

// The paths under SOURCE_ROOT that the COPY sources PATTERNS name (globs with * ? [..], a
// directory, a file), relative to it. INVALID_ARGUMENT when a pattern leaves the root;
// NOT_FOUND when one matches nothing ("COPY failed: no source files were specified").
absl::StatusOr<std::vector<std::string>> MatchSources(const std::string& source_root,
                                                      const std::vector<std::string>& patterns);

// A digest of the sources' names, types, modes and contents, for the layer cache: a changed
// file makes a new layer, a touched one does not.
absl::StatusOr<std::string> SourcesChecksum(const std::string& source_root,
                                            const std::vector<std::string>& sources);

// Creates directory PATH (absolute in the tree) and its missing parents inside ROOT, owned by
// OWNER (existing directories are left as they are). Returns its host path.
absl::StatusOr<std::string> MakeDirectoriesInRoot(const std::string& root, const std::string& path,
                                                  const std::optional<Owner>& owner);

// Copies SOURCES (relative to SOURCE_ROOT) to DESTINATION (absolute in the tree at ROOT) by
// Docker's rules: a directory's contents go into the destination directory; a file goes into
// it when the destination ends in '/', is an existing directory or there are several sources,
// else becomes it. Modes and times are kept; owners become OWNER (root when not given).
absl::Status CopyIntoRoot(const std::string& source_root, const std::vector<std::string>& sources,
                          const std::string& root, const std::string& destination,
                          const std::optional<Owner>& owner);

// --chown's USER[:GROUP], names looked up in ROOT's /etc/passwd and /etc/group.
absl::StatusOr<Owner> ResolveOwner(const std::string& root, const std::string& spec);

}  // namespace kapal::builder
