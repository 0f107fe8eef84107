#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "nlohmann/json.hpp"
#include "runtime/containers.h"
#include "runtime/security.h"
#include "runtime/shim_client.h"
#include "runtime/users.h"
#include "shim/exit_file.h"

// Processes run in a running container (ExecSync, interactive exec), attach through its shim,
// and what else is asked of the shim (log reopen, terminal size).
namespace kapal::runtime {

struct Containers::PreparedExec {
  std::string id;
  const Handler* handler = nullptr;
  base::TempDir scratch;
  std::string process_file;
};

absl::StatusOr<Container> Containers::RunningContainer(const std::string& id_or_prefix,
                                                       const char* purpose, bool or_created) {
  std::lock_guard lock(state_.mutex);
  absl::StatusOr<Container*> found = FindLocked(id_or_prefix);
  if (!found.ok()) return found.status();
  const Container& c = **found;
  if (c.state != runtime::v1::CONTAINER_RUNNING &&
      !(or_created && c.state == runtime::v1::CONTAINER_CREATED)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "container ", c.id, " is ", ContainerStateName(c.state), "; ", purpose, " a running one"));
  }
  return c;
}

absl::StatusOr<Containers::PreparedExec> Containers::PrepareExec(const std::string& id_or_prefix,
                                                                 const ExecOptions& options) {
  const std::vector<std::string>& cmd = options.cmd;
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
  process["terminal"] = options.tty;
  if (!options.working_dir.empty()) process["cwd"] = options.working_dir;
  // Extra variables replace the container's of the same name.
  for (const std::string& variable : options.env) {
    std::string name = variable.substr(0, variable.find('='));
    if (name.empty()) return absl::InvalidArgumentError("exec: environment entry has no name");
    nlohmann::json kept = nlohmann::json::array();
    for (const nlohmann::json& existing : process.value("env", nlohmann::json::array())) {
      if (!existing.is_string() ||
          existing.get<std::string>().substr(0, existing.get<std::string>().find('=')) != name) {
        kept.push_back(existing);
      }
    }
    kept.push_back(variable);
    process["env"] = kept;
  }
  if (!options.user.empty()) {
    absl::StatusOr<ProcessUser> user =
        ResolveUser(bundle + "/rootfs", runtime::v1::ContainerConfig(), options.user);
    if (!user.ok()) return user.status();
    process["user"] = {{"uid", user->uid}, {"gid", user->gid}};
    if (!user->additional_gids.empty()) process["user"]["additionalGids"] = user->additional_gids;
  }
  if (options.privileged) {
    std::vector<std::string> held = HeldCapabilities();
    process["capabilities"] = {
        {"bounding", held}, {"effective", held}, {"permitted", held}, {"inheritable", held}};
  }
  process.erase("consoleSize");
  absl::StatusOr<base::TempDir> scratch = base::TempDir::Create("exec", bundle);
  if (!scratch.ok()) return scratch.status();
  std::string process_file = scratch->Join("process.json");
  if (absl::Status written = base::WriteFileAtomically(process_file, process.dump(), 0600,
                                                       base::Durability::kVolatile);
      !written.ok()) {
    return written;
  }
  return PreparedExec{id, handler, std::move(*scratch), process_file};
}

absl::StatusOr<ExecResult> Containers::ExecSync(const std::string& id_or_prefix,
                                                const ExecOptions& options,
                                                std::chrono::seconds timeout) {
  const std::vector<std::string>& cmd = options.cmd;
  absl::StatusOr<PreparedExec> prepared = PrepareExec(id_or_prefix, options);
  if (!prepared.ok()) return prepared.status();
  std::chrono::milliseconds limit =
      timeout.count() > 0 ? std::chrono::milliseconds(timeout) : std::chrono::hours(24 * 365);
  absl::StatusOr<base::CommandResult> ran = prepared->handler->runtime.Exec(
      prepared->id, prepared->process_file, prepared->scratch.Join("pid"), limit);
  if (absl::IsDeadlineExceeded(ran.status())) {
    return absl::DeadlineExceededError(absl::StrCat("command ", absl::StrJoin(cmd, " "),
                                                    " timed out after ", timeout.count(), " s"));
  }
  if (!ran.ok()) return ran.status();
  ExecResult result{ran->output, ran->errors,
                    ran->exit.exited ? ran->exit.exit_code : 128 + ran->exit.signal};
  return result;
}

absl::StatusOr<std::unique_ptr<ExecProcess>> Containers::StartExec(const std::string& id_or_prefix,
                                                                   const ExecOptions& options) {
  absl::StatusOr<PreparedExec> prepared = PrepareExec(id_or_prefix, options);
  if (!prepared.ok()) return prepared.status();
  std::vector<std::string> argv =
      prepared->handler->runtime.ExecArgv(prepared->id, prepared->process_file);
  return ExecProcess::Start(std::move(argv), std::move(prepared->scratch), options);
}

absl::StatusOr<AttachedContainer> Containers::Attach(const std::string& id_or_prefix,
                                                     bool before_start) {
  absl::StatusOr<Container> c = RunningContainer(id_or_prefix, "attach needs", before_start);
  if (!c.ok()) return c.status();
  absl::StatusOr<base::UniqueFd> socket = ConnectShimSocket(c->bundle, shim::kAttachSocket);
  if (!socket.ok()) {
    // A shim of a kapal before streaming has no attach socket.
    return absl::FailedPreconditionError(
        absl::StrCat("container ", c->id, " cannot be attached to: ", socket.status().message(),
                     " (a container started by an older kapal-shim has no attach socket)"));
  }
  return AttachedContainer{std::move(*socket), c->id, c->config.tty(), c->config.stdin()};
}

absl::Status Containers::ResizeTerminal(const std::string& id_or_prefix, uint16_t columns,
                                        uint16_t rows) {
  absl::StatusOr<Container> c = RunningContainer(id_or_prefix, "resize needs");
  if (!c.ok()) return c.status();
  if (!c->config.tty()) {
    return absl::FailedPreconditionError(absl::StrCat("container ", c->id, " has no terminal"));
  }
  absl::StatusOr<std::string> answer =
      AskShim(c->bundle, absl::StrCat("resize ", columns, " ", rows));
  if (!answer.ok()) return answer.status();
  if (*answer != "ok") return absl::InternalError(absl::StrCat("resize: ", *answer));
  return absl::OkStatus();
}

absl::Status Containers::ReopenLog(const std::string& id_or_prefix) {
  absl::StatusOr<Container> c = RunningContainer(id_or_prefix, "its log is open only for");
  if (!c.ok()) return c.status();
  absl::StatusOr<std::string> answer = AskShim(c->bundle, "reopen");
  if (!answer.ok()) return answer.status();
  if (*answer != "ok") return absl::InternalError(absl::StrCat("reopen log: ", *answer));
  return absl::OkStatus();
}

}  // namespace kapal::runtime
