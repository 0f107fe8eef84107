#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/child_process.h"

namespace kapal::runtime {

// What kapal-shim needs to create one container.
struct ShimLaunch {
  std::string shim_binary;
  std::string container_id;
  std::string bundle;    // holds config.json and rootfs; the shim's files go here too
  std::string log_path;  // the CRI log file
  std::string oom_file;  // the cgroup file counting OOM kills ("" when unknown)
  std::string exit_dir;  // the shim adds a file named by the container id here on exit
  bool terminal = false;
  bool stdin_open = false;
  bool stdin_once = false;
};

// The file mode mask of the processes a container runs (its init through kapal-shim, and exec'd
// ones), as containerd's shims give them.
inline constexpr mode_t kContainerUmask = 022;

// The container's init process and the shim that watches it.
struct ShimProcess {
  pid_t container_pid = 0;
  pid_t shim_pid = 0;
};

// The error of an OCI runtime's ACTION from its output TEXT: the error line that matters (not
// its warnings), as INVALID_ARGUMENT for a config that is wrong (a missing command or path) and
// FAILED_PRECONDITION for one the host cannot satisfy.
absl::Status RuntimeError(absl::string_view action, absl::string_view text);

// Runs kapal-shim and reads the one line it reports on stdout. The shim forks and its first
// process exits at once; the detached one writes the line when its work is done ("ok ..." or
// "error TEXT"), so neither its exit nor end-of-file is waited for.
absl::StatusOr<std::string> RunShimForReport(const std::vector<std::string>& argv);

// Starts `kapal-shim --infra POD_DIR`, the init of a pod's shared PID namespace; returns its
// pid. POD_DIR stays on its command line, so the process can be found without its pid.
absl::StatusOr<int> StartPodInfra(const std::string& shim_binary, const std::string& pod_dir);

// SIGKILL to every infra process started for POD_DIR.
void KillInfraOf(const std::string& pod_dir);

// An OCI runtime (runc, crun) driven through its command line, with its own state root.
class OciRuntime {
 public:
  OciRuntime(std::string binary, std::string state_root, bool systemd_cgroup)
      : binary_(std::move(binary)),
        state_root_(std::move(state_root)),
        systemd_cgroup_(systemd_cgroup) {}

  const std::string& Binary() const { return binary_; }

  // Starts kapal-shim, which runs `create` and stays with the container. Returns once the
  // container exists (created, not started); the runtime's own error text otherwise.
  absl::StatusOr<ShimProcess> Create(const ShimLaunch& launch) const;
  absl::Status Start(const std::string& id) const;
  // Sends SIGNAL to the container's init (ALL: to every process of it).
  absl::Status Kill(const std::string& id, int signal, bool all = false) const;
  // Deletes the runtime's record and cgroup of a stopped container (--force kills a running
  // one first). A container the runtime does not know is fine: delete is idempotent.
  absl::Status Delete(const std::string& id) const;
  // Applies the cgroup resources in RESOURCES_JSON_PATH (the spec's linux.resources) to the
  // running container.
  absl::Status Update(const std::string& id, const std::string& resources_json_path) const;
  // The mount options the runtime knows, from its `features` (OCI runtime features, runc 1.1 and
  // crun 1.5 on); empty when it cannot say.
  std::vector<std::string> MountOptions() const;
  // Freezes (and thaws) every process of the container (the cgroup freezer).
  absl::Status Pause(const std::string& id) const;
  absl::Status Resume(const std::string& id) const;
  // The host pids of the container's processes.
  absl::StatusOr<std::vector<int>> Processes(const std::string& id) const;
  // The runtime's view: "created", "running", "stopped", "paused"; NOT_FOUND when unknown.
  absl::StatusOr<std::string> State(const std::string& id) const;
  // Runs the process described by PROCESS_JSON_PATH inside the container, collecting output.
  // DEADLINE_EXCEEDED after TIMEOUT (the process is killed).
  // The command line of an exec of PROCESS_JSON_PATH in container ID, for a caller that runs it
  // with stdio of its own (the id is last).
  std::vector<std::string> ExecArgv(const std::string& id,
                                    const std::string& process_json_path) const;
  absl::StatusOr<base::CommandResult> Exec(const std::string& id,
                                           const std::string& process_json_path,
                                           const std::string& pid_file,
                                           std::chrono::milliseconds timeout) const;

 private:
  std::vector<std::string> Command(std::initializer_list<std::string> args) const;
  absl::StatusOr<base::CommandResult> Run(std::initializer_list<std::string> args) const;

  std::string binary_;
  std::string state_root_;
  bool systemd_cgroup_;
};

}  // namespace kapal::runtime
