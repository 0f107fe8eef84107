#pragma once

// base: the small tools every component uses (RAII fds, child processes, temp dirs, files,
// the logger). It knows nothing of containers, images or any API, and depends on nothing of ours.

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kapal::base {

// An error status for a failed system call: the code follows errno (ENOENT is NOT_FOUND, EACCES
// is PERMISSION_DENIED, ...) and the message is "CONTEXT: strerror".
absl::Status ErrnoStatus(int errno_value, absl::string_view context);

absl::StatusOr<std::string> ReadFile(const std::string& path);

// write(2) until all of DATA is written (short writes and EINTR retried); CONTEXT names the
// file in the error.
absl::Status WriteAll(int fd, absl::string_view data, absl::string_view context);

// Whether a write must reach the disk before it returns. kVolatile is for files under the state
// dir (a tmpfs in production, emptied by a reboot), where a rename alone is enough.
enum class Durability { kSynced, kVolatile };

// Writes the whole file through a temporary sibling, fsyncs it (unless kVolatile) and renames it
// into place, so a reader (or a crash) sees either the old content or the new one, never half.
absl::Status WriteFileAtomically(const std::string& path, absl::string_view content,
                                 mode_t mode = 0644, Durability durability = Durability::kSynced);

// mkdir -p, with exactly MODE (whatever the umask) for the directories it creates. Existing
// directories are left as they are.
absl::Status MakeDirectories(const std::string& path, mode_t mode);
// Tells ext4 that DIRECTORY holds unrelated trees (chattr +T, "top of directory hierarchies"):
// its allocator then spreads the trees made in it over the block groups, as it does top-level
// directories. A hint; filesystems without the flag refuse it and nothing changes.
void MarkAsTopOfTrees(const std::string& directory);

// Finds an executable the way execvp would: an absolute or relative path is checked as it is,
// a bare name is looked up in $PATH (or in /usr/sbin:/usr/bin:/sbin:/bin when PATH is unset).
absl::StatusOr<std::string> FindExecutable(absl::string_view name);

// The names in directory PATH (without "." and ".."), sorted.
absl::StatusOr<std::vector<std::string>> ListDirectory(const std::string& path);

// PATH inside the tree at ROOT, symlinks resolved as if ROOT were "/": never outside ROOT
// (a container's or an image's root filesystem seen from the host).
absl::StatusOr<std::string> ResolveInRoot(const std::string& root, const std::string& path);

// Space a directory tree takes: allocated bytes (st_blocks) and inodes, the root included. It
// stays on the root's filesystem, so a mount inside the tree is not counted.
struct TreeUsage {
  int64_t bytes = 0;
  int64_t inodes = 0;
};
TreeUsage MeasureTree(const std::string& path);

}  // namespace kapal::base
