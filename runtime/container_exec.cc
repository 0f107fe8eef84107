#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "nlohmann/json.hpp"
#include "runtime/containers.h"
#include "runtime/shim_client.h"

// Processes run in a running container: ExecSync, and the log reopen asked of its shim.
namespace kapal::runtime {

absl::StatusOr<ExecResult> Containers::ExecSync(const std::string& id_or_prefix,
                                                const std::vector<std::string>& cmd,
                                                std::chrono::seconds timeout) {
  if (cmd.empty()) return absl::InvalidArgumentError("exec needs a command");
  std::string id, bundle;
  const Handler* handler = nullptr;
  {
    std::lock_guard lock(state_.mutex);
    absl::StatusOr<Container*> found_container = FindLocked(id_or_prefix);
    if (!found_container.ok()) return found_container.status();
    Container& c = **found_container;
    if (c.state != runtime::v1::CONTAINER_RUNNING) {
      return absl::FailedPreconditionError(absl::StrCat(
          "container ", c.id, " is ", ContainerStateName(c.state), "; exec needs a running one"));
    }
    absl::StatusOr<const Handler*> found = HandlerOfLocked(c);
    if (!found.ok()) return found.status();
    handler = *found;
    id = c.id;
    bundle = c.bundle;
  }
  // The exec'd process is the container's own process with another command line: same user,
  // environment, working dir, capabilities.
  absl::StatusOr<std::string> spec_text = base::ReadFile(bundle + "/config.json");
  if (!spec_text.ok()) return spec_text.status();
  nlohmann::json spec = nlohmann::json::parse(*spec_text, nullptr, false);
  if (!spec.is_object() || !spec.contains("process")) {
    return absl::DataLossError(absl::StrCat("container ", id, " has a damaged config.json"));
  }
  nlohmann::json process = spec["process"];
  process["args"] = cmd;
  process["terminal"] = false;
  absl::StatusOr<base::TempDir> scratch = base::TempDir::Create("exec", bundle);
  if (!scratch.ok()) return scratch.status();
  std::string process_file = scratch->Join("process.json");
  if (absl::Status written = base::WriteFileAtomically(process_file, process.dump(), 0600,
                                                       base::Durability::kVolatile);
      !written.ok()) {
    return written;
  }
  std::chrono::milliseconds limit =
      timeout.count() > 0 ? std::chrono::milliseconds(timeout) : std::chrono::hours(24 * 365);
  absl::StatusOr<base::CommandResult> ran =
      handler->runtime.Exec(id, process_file, scratch->Join("pid"), limit);
  if (absl::IsDeadlineExceeded(ran.status())) {
    return absl::DeadlineExceededError(absl::StrCat("command ", absl::StrJoin(cmd, " "),
                                                    " timed out after ", timeout.count(), " s"));
  }
  if (!ran.ok()) return ran.status();
  ExecResult result{ran->output, ran->errors,
                    ran->exit.exited ? ran->exit.exit_code : 128 + ran->exit.signal};
  return result;
}

absl::Status Containers::ReopenLog(const std::string& id_or_prefix) {
  std::string bundle;
  {
    std::lock_guard lock(state_.mutex);
    absl::StatusOr<Container*> found_container = FindLocked(id_or_prefix);
    if (!found_container.ok()) return found_container.status();
    Container& c = **found_container;
    if (c.state != runtime::v1::CONTAINER_RUNNING) {
      return absl::FailedPreconditionError(
          absl::StrCat("container ", c.id, " is not running; its log is closed"));
    }
    bundle = c.bundle;
  }
  absl::StatusOr<std::string> answer = AskShim(bundle, "reopen");
  if (!answer.ok()) return answer.status();
  if (*answer != "ok") return absl::InternalError(absl::StrCat("reopen log: ", *answer));
  return absl::OkStatus();
}

}  // namespace kapal::runtime
