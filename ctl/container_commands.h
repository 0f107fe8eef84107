#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "ctl/commands.h"

// kapalctl's Docker-style container verbs over kapal.v1.Containers, for every container of the
// node (kubelet's and crictl's too): pause, unpause, top, cp, export, commit.
namespace kapal::ctl {

absl::Status RunPause(CriClient& client, const std::vector<std::string>& ids, bool pause,
                      std::ostream& out);
// The container's processes: host pid and command line.
absl::Status RunTop(CriClient& client, const std::string& id, std::ostream& out);
// SOURCE and DESTINATION as docker cp takes them: CONTAINER:PATH on one side, and on the other
// "-" (a tar on stdin or stdout) or a local path (an existing directory to copy into, or a file
// or directory to copy from). ARCHIVE_OWNERS: the container user owns what is copied in.
absl::Status RunCopy(CriClient& client, const std::string& source, const std::string& destination,
                     bool archive_owners, std::ostream& out);
// The container's root filesystem as a tar into FILE ("-": stdout).
absl::Status RunExportContainer(CriClient& client, const std::string& id, const std::string& file,
                                std::ostream& out);

// docker commit: the container's changes as an image (REFERENCE "" leaves it untagged); prints
// the image id.
absl::Status RunCommit(CriClient& client, const std::string& id, const std::string& reference,
                       const std::string& message, const std::string& author,
                       const std::vector<std::string>& changes, bool pause, std::ostream& out);

// docker import: the root filesystem tar FILE ("-": stdin) as a one-layer image; prints its id.
absl::Status RunImportRootfs(CriClient& client, const std::string& file,
                             const std::string& reference, const std::string& message,
                             const std::vector<std::string>& changes, std::ostream& out);

// docker exec's options that CRI's ExecSync lacks, for `kapalctl exec -u/-e/-w/--privileged`.
struct ExecExtras {
  std::string user;  // USER[:GROUP]
  std::vector<std::string> env;
  std::string working_dir;
  bool privileged = false;
  bool Any() const { return !user.empty() || !env.empty() || !working_dir.empty() || privileged; }
};
// Runs CMD to its end through kapal.v1.Containers/Exec; its output to OUT and ERR, its exit
// code into EXIT_CODE.
absl::Status RunExecWithExtras(CriClient& client, const std::string& id,
                               const std::vector<std::string>& cmd, const ExecExtras& extras,
                               int64_t timeout_seconds, std::ostream& out, std::ostream& err,
                               int* exit_code);

}  // namespace kapal::ctl
