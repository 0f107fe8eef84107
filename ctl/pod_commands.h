#pragma once

#include <chrono>
#include <map>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/cri_services.h"
#include "ctl/commands.h"
#include "ctl/output.h"
#include "ctl/stream_client.h"

// Pod and container commands of kapalctl, as crictl has them (runp, pods, create, ps, logs,
// exec, ...), and Docker-style `run`.
namespace kapal::ctl {

// Reads a pod or container config file as crictl does: JSON or YAML, protobuf field names in
// lowerCamelCase or snake_case.
absl::Status LoadMessageFile(const std::string& path, google::protobuf::Message* message);

// KEY=VALUE flags (--label) as a CRI label selector; INVALID_ARGUMENT names a malformed one.
absl::StatusOr<std::map<std::string, std::string>> ParseLabels(
    const std::vector<std::string>& labels);

absl::Status RunRunPod(CriClient& client, const std::string& config_file,
                       const std::string& runtime_handler, std::ostream& out);
absl::Status RunStopPods(CriClient& client, const std::vector<std::string>& ids, std::ostream& out);
absl::Status RunRemovePods(CriClient& client, const std::vector<std::string>& ids, bool all,
                           std::ostream& out);

struct PodsCommand {
  std::string id;
  std::string name;
  std::string pod_namespace;
  std::string state;                // ready / notready
  std::vector<std::string> labels;  // key=value
  bool quiet = false;
  OutputFormat format = OutputFormat::kTable;
};
absl::Status RunPods(CriClient& client, const PodsCommand& command, std::ostream& out);
absl::Status RunInspectPods(CriClient& client, const std::vector<std::string>& ids,
                            OutputFormat format, std::ostream& out);

// `create POD CONTAINER_CONFIG POD_CONFIG`: pulls the image when missing (unless NO_PULL).
absl::Status RunCreateContainer(CriClient& client, const std::string& pod_id,
                                const std::string& container_file, const std::string& pod_file,
                                bool no_pull, std::ostream& out);
absl::Status RunStartContainers(CriClient& client, const std::vector<std::string>& ids,
                                std::ostream& out);
absl::Status RunStopContainers(CriClient& client, const std::vector<std::string>& ids,
                               int64_t timeout_seconds, std::ostream& out);
absl::Status RunRemoveContainers(CriClient& client, const std::vector<std::string>& ids, bool force,
                                 bool all, std::ostream& out);

struct PsCommand {
  bool all = false;
  bool quiet = false;
  std::string id;
  std::string pod;
  std::string name;
  std::string state;  // created / running / exited / unknown
  std::vector<std::string> labels;
  bool latest = false;
  OutputFormat format = OutputFormat::kTable;
};
absl::Status RunPs(CriClient& client, const PsCommand& command, std::ostream& out);
absl::Status RunInspectContainers(CriClient& client, const std::vector<std::string>& ids,
                                  OutputFormat format, std::ostream& out);

struct LogsCommand {
  std::string id;
  bool follow = false;
  int64_t tail = -1;  // last N lines; -1 for all
  std::string since;  // a duration ("10s", "5m") or an RFC 3339 time
  bool timestamps = false;
};
// Reads the container's CRI log file (as crictl does), stdout to OUT and stderr to ERR.
absl::Status RunLogs(CriClient& client, const LogsCommand& command, std::ostream& out,
                     std::ostream& err);

// `exec ID CMD...` (non-interactive): the command's output, and its exit code in EXIT_CODE.
absl::Status RunExec(CriClient& client, const std::string& id, const std::vector<std::string>& cmd,
                     int64_t timeout_seconds, std::ostream& out, std::ostream& err, int* exit_code);

struct RunCommandLine {
  std::string image;
  std::vector<std::string> args;
  std::string name;
  std::vector<std::string> env;      // K=V
  std::vector<std::string> volumes;  // SRC:DST[:ro]
  std::vector<std::string> ports;    // HOST:CONTAINER[/udp]
  std::string runtime_handler;
  bool remove = false;
  bool detach = false;
  bool interactive = false;  // -i: stdin open (once), attached
  bool tty = false;          // -t: a terminal
  bool terminal = false;     // live pull progress
};
// `exec -i/-t`: the command through the streaming server, our terminal raw when -t.
absl::Status RunStreamingExec(CriClient& client, const std::string& id,
                              const std::vector<std::string>& cmd,
                              const InteractiveOptions& options, int* exit_code);
// `attach`: the container's output (and with -i its stdin) until it ends or we are interrupted.
absl::Status RunAttach(CriClient& client, const std::string& id, const InteractiveOptions& options,
                       int* exit_code);

// Docker-style `run`: pulls the image if missing, makes a pod and a container, starts it, and
// (unless detached) streams its output and sets EXIT_CODE to the container's.
absl::Status RunRun(CriClient& client, const RunCommandLine& command, std::ostream& out,
                    std::ostream& err, int* exit_code);

}  // namespace kapal::ctl
