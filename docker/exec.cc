// The exec endpoints of the Docker API: create, start (a hijacked connection, or detached),
// resize, inspect.

#include <poll.h>
#include <sys/socket.h>

#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "docker/api_impl.h"
#include "docker/hijack.h"
#include "runtime/records.h"
#include "streaming/sessions.h"

namespace kapal::docker {

namespace {

std::vector<std::string> Strings(const nlohmann::json& body, const std::string& key) {
  std::vector<std::string> values;
  auto found = body.find(key);
  if (found == body.end() || !found->is_array()) return values;
  for (const nlohmann::json& item : *found) {
    if (item.is_string()) values.push_back(item.get<std::string>());
  }
  return values;
}

}  // namespace

void Api::Impl::CreateExec(const std::string& ref, const Request& request, Responder& responder) {
  nlohmann::json body = nlohmann::json::parse(request.body, nullptr, false);
  if (!body.is_object()) return responder.Error(400, "the exec body is not a JSON object");
  absl::StatusOr<DockerContainer> found = FindContainer(ref);
  if (!found.ok()) return ReplyError(responder, found.status());
  if (found->container.state != runtime::v1::CONTAINER_RUNNING) {
    return responder.Error(409, absl::StrCat("Container ", found->container.id, " is not running"));
  }
  ExecInstance exec;
  exec.options.cmd = Strings(body, "Cmd");
  if (exec.options.cmd.empty()) return responder.Error(400, "No exec command specified");
  exec.options.user = body.value("User", std::string());
  exec.options.privileged = body.value("Privileged", false);
  exec.options.tty = body.value("Tty", false);
  exec.options.stdin = body.value("AttachStdin", false);
  exec.options.stdout = body.value("AttachStdout", false);
  exec.options.stderr = body.value("AttachStderr", false);
  exec.options.env = Strings(body, "Env");
  exec.options.working_dir = body.value("WorkingDir", std::string());
  exec.container_id = found->container.id;
  exec.body = body;
  exec.id = runtime::NewId();
  std::string id = exec.id;
  {
    std::lock_guard lock(mutex);
    execs.emplace(id, std::move(exec));
  }
  responder.Json(201, {{"Id", id}});
}

void Api::Impl::StartExec(const std::string& id, const Request& request, Responder& responder) {
  nlohmann::json body =
      nlohmann::json::parse(request.body.empty() ? "{}" : request.body, nullptr, false);
  if (!body.is_object()) return responder.Error(400, "the exec start body is not a JSON object");
  bool detach = body.value("Detach", false);
  runtime::ExecOptions exec_options;
  std::string container_id;
  {
    std::lock_guard lock(mutex);
    auto found = execs.find(id);
    if (found == execs.end())
      return responder.Error(404, absl::StrCat("No such exec instance: ", id));
    if (found->second.started) {
      return responder.Error(409, absl::StrCat("exec ", id, " has already been started"));
    }
    found->second.started = true;
    found->second.running = true;
    exec_options = found->second.options;
    container_id = found->second.container_id;
  }
  if (detach) exec_options.stdin = exec_options.stdout = exec_options.stderr = false;
  absl::StatusOr<std::unique_ptr<runtime::ExecProcess>> process =
      runtime.StartExec(container_id, exec_options);
  auto finish = [&](int code) {
    std::lock_guard lock(mutex);
    auto found = execs.find(id);
    if (found == execs.end()) return;
    found->second.running = false;
    found->second.process = nullptr;
    found->second.exit_code = code;
  };
  if (!process.ok()) {
    finish(126);
    return ReplyError(responder, process.status());
  }
  {
    std::lock_guard lock(mutex);
    execs[id].process = process->get();
  }
  if (detach) {
    responder.Empty(200);
    // The connection's thread waits for the process (ended by the server's stop, if need be).
    while (!responder.Stopping()) {
      pollfd ended{(*process)->ended(), POLLIN, 0};
      if (::poll(&ended, 1, 500) > 0) break;
    }
    if (responder.Stopping()) (*process)->Kill();
    absl::StatusOr<int> code = (*process)->ExitCode();
    finish(code.ok() ? *code : 137);
    return;
  }
  bool tty = exec_options.tty;
  int fd = responder.Hijack(request, tty ? "application/vnd.docker.raw-stream"
                                         : "application/vnd.docker.multiplexed-stream");
  HijackedTransport transport(fd, /*multiplexed=*/!tty, exec_options.stdout, exec_options.stderr);
  streaming::RunExecSession(transport, **process, exec_options.cmd);
  absl::StatusOr<int> code = (*process)->ExitCode();
  // Recorded before the connection closes: the CLI asks for the exit code right after.
  finish(code.ok() ? *code : 137);
  ::shutdown(fd, SHUT_WR);
}

void Api::Impl::ResizeExec(const std::string& id, const Request& request, Responder& responder) {
  int height = std::atoi(request.Query("h", "0").c_str());
  int width = std::atoi(request.Query("w", "0").c_str());
  if (height <= 0 || width <= 0 || height > 65535 || width > 65535) {
    return responder.Error(400, "resize needs h and w between 1 and 65535");
  }
  std::lock_guard lock(mutex);
  auto found = execs.find(id);
  if (found == execs.end())
    return responder.Error(404, absl::StrCat("No such exec instance: ", id));
  if (found->second.process == nullptr) {
    return responder.Error(409, absl::StrCat("exec ", id, " is not running"));
  }
  absl::Status resized =
      found->second.process->Resize(static_cast<uint16_t>(width), static_cast<uint16_t>(height));
  if (!resized.ok()) return ReplyError(responder, resized);
  responder.Text(200, "text/plain; charset=utf-8", "");
}

void Api::Impl::InspectExec(const std::string& id, Responder& responder) {
  std::lock_guard lock(mutex);
  auto found = execs.find(id);
  if (found == execs.end())
    return responder.Error(404, absl::StrCat("No such exec instance: ", id));
  const ExecInstance& exec = found->second;
  std::vector<std::string> arguments(exec.options.cmd.begin() + 1, exec.options.cmd.end());
  responder.Json(200, {{"ID", exec.id},
                       {"Running", exec.running},
                       {"ExitCode", exec.exit_code.has_value() ? nlohmann::json(*exec.exit_code)
                                                               : nlohmann::json(nullptr)},
                       {"ProcessConfig",
                        {{"tty", exec.options.tty},
                         {"entrypoint", exec.options.cmd.front()},
                         {"arguments", arguments},
                         {"privileged", false},
                         {"user", ""}}},
                       {"OpenStdin", exec.options.stdin},
                       {"OpenStderr", exec.options.stderr},
                       {"OpenStdout", exec.options.stdout},
                       {"CanRemove", false},
                       {"ContainerID", exec.container_id},
                       {"DetachKeys", ""},
                       {"Pid", 0}});
}

}  // namespace kapal::docker
