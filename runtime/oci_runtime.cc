#include "runtime/oci_runtime.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <regex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/files.h"
#include "base/unique_fd.h"
#include "nlohmann/json.hpp"

namespace kapal::runtime {

namespace {

// create/start/kill/delete are quick; a runtime stuck for this long is broken.
constexpr std::chrono::seconds kRuntimeTimeout(60);

}  // namespace

absl::StatusOr<std::string> RunShimForReport(const std::vector<std::string>& argv) {
  int report[2];
  if (::pipe2(report, O_CLOEXEC) != 0) return base::ErrnoStatus(errno, "pipe");
  base::UniqueFd report_read(report[0]), report_write(report[1]);
  base::ChildOptions options;
  options.stdout_fd = report_write.Get();
  absl::StatusOr<base::ChildProcess> shim = base::ChildProcess::Spawn(argv, options);
  if (!shim.ok()) return shim.status();
  report_write.Reset();
  std::string line;
  auto deadline = std::chrono::steady_clock::now() + kRuntimeTimeout;
  char buffer[1024];
  while (line.find('\n') == std::string::npos) {
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                    deadline - std::chrono::steady_clock::now())
                                    .count());
    if (left <= 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("kapal-shim did not report within ", kRuntimeTimeout.count(), " s"));
    }
    pollfd wait{report_read.Get(), POLLIN, 0};
    if (::poll(&wait, 1, left) < 0 && errno != EINTR) return base::ErrnoStatus(errno, "poll");
    ssize_t n = ::read(report_read.Get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    line.append(buffer, static_cast<size_t>(n));
  }
  // The shim's first process has exited by now (or exits right after); reap it.
  (void)shim->Wait(std::chrono::seconds(5));
  return line.substr(0, line.find('\n'));
}

absl::Status RuntimeError(absl::string_view action, absl::string_view text) {
  // runc and crun log as `time="..." level=warning msg="..."`; the last error (or fatal) message
  // is the one that says what went wrong, the warnings are noise to the client.
  static const std::regex kEntry(R"re(level=(\w+) msg="((?:[^"\\]|\\.)*)")re");
  std::string input(text);
  std::string message;
  bool structured = false;
  for (auto it = std::sregex_iterator(input.begin(), input.end(), kEntry);
       it != std::sregex_iterator(); ++it) {
    structured = true;
    std::string level = (*it)[1];
    if (level == "error" || level == "fatal") message = (*it)[2];
  }
  if (!structured) message = input;
  message = std::regex_replace(message, std::regex(R"(\\(.))"), "$1");
  message = std::string(absl::StripAsciiWhitespace(message));
  if (message.empty()) message = structured ? "failed (it logged only warnings)" : "failed";
  std::string full = absl::StrCat(action, ": ", message);
  // A config the runtime finds wrong: a command or path that is not in the image, a bad value.
  for (const char* wrong : {"executable file not found", "no such file or directory",
                            "not a directory", "is a directory", "invalid argument", "invalid "}) {
    if (absl::StrContains(message, wrong)) return absl::InvalidArgumentError(full);
  }
  // Anything else the host cannot do as asked: permissions, capabilities, cgroups, devices.
  return absl::FailedPreconditionError(full);
}

absl::StatusOr<int> StartPodInfra(const std::string& shim_binary, const std::string& pod_dir) {
  absl::StatusOr<std::string> line = RunShimForReport({shim_binary, "--infra", pod_dir});
  if (!line.ok()) return line.status();
  int pid = 0;
  if (line->rfind("ok ", 0) == 0 && absl::SimpleAtoi(line->substr(3), &pid) && pid > 0) return pid;
  // The infra process could not fork or make its PID namespace: the host refuses.
  if (line->rfind("error ", 0) == 0) {
    return absl::FailedPreconditionError(absl::StrCat("kapal-shim --infra: ", line->substr(6)));
  }
  return absl::InternalError(absl::StrCat("kapal-shim --infra reported \"", *line, "\""));
}

std::vector<std::string> OciRuntime::Command(std::initializer_list<std::string> args) const {
  std::vector<std::string> argv = {binary_, "--root", state_root_};
  if (systemd_cgroup_) argv.push_back("--systemd-cgroup");
  argv.insert(argv.end(), args);
  return argv;
}

absl::StatusOr<base::CommandResult> OciRuntime::Run(std::initializer_list<std::string> args) const {
  return base::RunCommand(Command(args), "", kRuntimeTimeout);
}

std::vector<std::string> OciRuntime::MountOptions() const {
  absl::StatusOr<base::CommandResult> ran =
      base::RunCommand({binary_, "features"}, "", kRuntimeTimeout);
  if (!ran.ok() || !ran->Succeeded()) return {};
  nlohmann::json features = nlohmann::json::parse(ran->output, nullptr, false);
  if (!features.is_object() || !features.contains("mountOptions") ||
      !features["mountOptions"].is_array()) {
    return {};
  }
  std::vector<std::string> options;
  for (const nlohmann::json& option : features["mountOptions"]) {
    if (option.is_string()) options.push_back(option.get<std::string>());
  }
  return options;
}

void KillInfraOf(const std::string& pod_dir) {
  absl::StatusOr<std::vector<std::string>> entries = base::ListDirectory("/proc");
  if (!entries.ok()) return;
  for (const std::string& name : *entries) {
    int pid = 0;
    if (!absl::SimpleAtoi(name, &pid)) continue;
    absl::StatusOr<std::string> comm = base::ReadFile(absl::StrCat("/proc/", pid, "/comm"));
    if (!comm.ok() || absl::StripTrailingAsciiWhitespace(*comm) != "kapal-infra") continue;
    absl::StatusOr<std::string> cmdline = base::ReadFile(absl::StrCat("/proc/", pid, "/cmdline"));
    // "kapal-shim\0--infra\0POD_DIR\0"
    if (cmdline.ok() &&
        absl::StrContains(*cmdline, std::string("--infra") + '\0' + pod_dir + '\0')) {
      ::kill(pid, SIGKILL);
    }
  }
}

absl::StatusOr<ShimProcess> OciRuntime::Create(const ShimLaunch& launch) const {
  std::vector<std::string> argv = {
      launch.shim_binary, "--id",  launch.container_id, "--bundle",  launch.bundle,
      "--runtime",        binary_, "--runtime-root",    state_root_, "--log-path",
      launch.log_path};
  if (!launch.oom_file.empty()) argv.insert(argv.end(), {"--oom-file", launch.oom_file});
  if (!launch.exit_dir.empty()) argv.insert(argv.end(), {"--exit-dir", launch.exit_dir});
  if (systemd_cgroup_) argv.push_back("--systemd-cgroup");
  if (launch.terminal) argv.push_back("--terminal");
  if (launch.stdin_open) argv.push_back("--stdin");
  if (launch.stdin_open && launch.stdin_once) argv.push_back("--stdin-once");

  absl::StatusOr<std::string> reported = RunShimForReport(argv);
  if (!reported.ok()) return reported.status();
  std::string line = *reported;
  if (line.rfind("ok ", 0) == 0) {
    std::vector<std::string> words = absl::StrSplit(line.substr(3), ' ');
    ShimProcess process;
    if (words.size() == 2 && absl::SimpleAtoi(words[0], &process.container_pid) &&
        absl::SimpleAtoi(words[1], &process.shim_pid)) {
      return process;
    }
  }
  if (line.rfind("error ", 0) == 0) {
    return RuntimeError(absl::StrCat(binary_, " create"), line.substr(6));
  }
  std::string log;
  if (absl::StatusOr<std::string> text = base::ReadFile(launch.bundle + "/shim.log"); text.ok()) {
    log = *text;
  }
  return absl::InternalError(
      absl::StrCat("kapal-shim ended without a report", log.empty() ? "" : ": ", log));
}

absl::Status OciRuntime::Start(const std::string& id) const {
  absl::StatusOr<base::CommandResult> ran = Run({"start", id});
  if (!ran.ok()) return ran.status();
  if (!ran->Succeeded()) {
    return RuntimeError(absl::StrCat(binary_, " start"),
                        ran->errors.empty() ? ran->Describe() : ran->errors);
  }
  return absl::OkStatus();
}

absl::Status OciRuntime::Kill(const std::string& id, int signal, bool all) const {
  absl::StatusOr<base::CommandResult> ran = all ? Run({"kill", "--all", id, std::to_string(signal)})
                                                : Run({"kill", id, std::to_string(signal)});
  if (!ran.ok()) return ran.status();
  if (!ran->Succeeded()) {
    std::string text = ran->Describe();
    // Already gone: what kill wanted has happened.
    if (text.find("not running") != std::string::npos ||
        text.find("does not exist") != std::string::npos ||
        text.find("process already finished") != std::string::npos) {
      return absl::NotFoundError(text);
    }
    return RuntimeError(absl::StrCat(binary_, " kill"), text);
  }
  return absl::OkStatus();
}

absl::Status OciRuntime::Delete(const std::string& id) const {
  absl::StatusOr<base::CommandResult> ran = Run({"delete", "--force", id});
  if (!ran.ok()) return ran.status();
  if (!ran->Succeeded() && ran->Describe().find("does not exist") == std::string::npos) {
    return RuntimeError(absl::StrCat(binary_, " delete"), ran->Describe());
  }
  return absl::OkStatus();
}

absl::Status OciRuntime::Update(const std::string& id,
                                const std::string& resources_json_path) const {
  absl::StatusOr<base::CommandResult> ran = Run({"update", "--resources", resources_json_path, id});
  if (!ran.ok()) return ran.status();
  if (!ran->Succeeded()) {
    return RuntimeError(absl::StrCat(binary_, " update"),
                        ran->errors.empty() ? ran->Describe() : ran->errors);
  }
  return absl::OkStatus();
}

absl::Status OciRuntime::Pause(const std::string& id) const {
  absl::StatusOr<base::CommandResult> ran = Run({"pause", id});
  if (!ran.ok()) return ran.status();
  if (!ran->Succeeded()) return RuntimeError(absl::StrCat(binary_, " pause"), ran->Describe());
  return absl::OkStatus();
}

absl::Status OciRuntime::Resume(const std::string& id) const {
  absl::StatusOr<base::CommandResult> ran = Run({"resume", id});
  if (!ran.ok()) return ran.status();
  if (!ran->Succeeded()) return RuntimeError(absl::StrCat(binary_, " resume"), ran->Describe());
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int>> OciRuntime::Processes(const std::string& id) const {
  absl::StatusOr<base::CommandResult> ran = Run({"ps", "--format", "json", id});
  if (!ran.ok()) return ran.status();
  if (!ran->Succeeded()) return RuntimeError(absl::StrCat(binary_, " ps"), ran->Describe());
  nlohmann::json pids = nlohmann::json::parse(ran->output, nullptr, false);
  std::vector<int> out;
  if (!pids.is_array()) return out;  // "null" when there are none
  for (const nlohmann::json& pid : pids) {
    if (pid.is_number_integer()) out.push_back(pid.get<int>());
  }
  return out;
}

absl::StatusOr<std::string> OciRuntime::State(const std::string& id) const {
  absl::StatusOr<base::CommandResult> ran = Run({"state", id});
  if (!ran.ok()) return ran.status();
  if (!ran->Succeeded()) {
    return absl::NotFoundError(absl::StrCat(binary_, " state ", id, ": ", ran->Describe()));
  }
  nlohmann::json state = nlohmann::json::parse(ran->output, nullptr, false);
  if (!state.is_object()) return absl::InternalError(binary_ + " state printed no JSON");
  return state.value("status", std::string("unknown"));
}

std::vector<std::string> OciRuntime::ExecArgv(const std::string& id,
                                              const std::string& process_json_path) const {
  return Command({"exec", "--process", process_json_path, id});
}

absl::StatusOr<base::CommandResult> OciRuntime::Exec(const std::string& id,
                                                     const std::string& process_json_path,
                                                     const std::string& pid_file,
                                                     std::chrono::milliseconds timeout) const {
  // At the deadline the exec'd process and all it started end first, while the runtime's exec
  // still waits for it: killing only the runtime would leave them running in the container
  // (and a process whose parent is gone is left to the container's init, which may never reap).
  auto end_exec = [&] {
    absl::StatusOr<std::string> pid = base::ReadFile(pid_file);
    int number = 0;
    if (pid.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(*pid), &number) && number > 0) {
      base::KillProcessTree(number);
    }
  };
  base::ChildOptions options;
  options.umask = kContainerUmask;
  return base::RunCommand(
      Command({"exec", "--process", process_json_path, "--pid-file", pid_file, id}), "", timeout,
      options, end_exec);
}

}  // namespace kapal::runtime
