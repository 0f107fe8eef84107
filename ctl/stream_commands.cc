#include <chrono>
#include <thread>

#include "ctl/pod_commands.h"
#include "ctl/stream_client.h"

// The verbs that go through the streaming server: exec -i/-t and attach.
namespace kapal::ctl {

absl::Status RunStreamingExec(CriClient& client, const std::string& id,
                              const std::vector<std::string>& cmd,
                              const InteractiveOptions& options, int* exit_code) {
  runtime::v1::ExecRequest request;
  request.set_container_id(id);
  for (const std::string& part : cmd) request.add_cmd(part);
  request.set_tty(options.tty);
  request.set_stdin(options.stdin);
  request.set_stdout(true);
  request.set_stderr(!options.tty);  // a terminal carries both
  runtime::v1::ExecResponse response;
  grpc::Status status = client.Runtime().Exec(client.NewContext().get(), request, &response);
  if (!status.ok()) return RpcError("Exec", status);
  absl::StatusOr<int> code = RunInteractive(response.url(), options);
  if (!code.ok()) return code.status();
  *exit_code = *code;
  return absl::OkStatus();
}

absl::Status RunAttach(CriClient& client, const std::string& id, const InteractiveOptions& options,
                       int* exit_code) {
  runtime::v1::AttachRequest request;
  request.set_container_id(id);
  request.set_stdin(options.stdin);
  request.set_tty(options.tty);
  request.set_stdout(true);
  request.set_stderr(!options.tty);
  runtime::v1::AttachResponse response;
  grpc::Status status = client.Runtime().Attach(client.NewContext().get(), request, &response);
  if (!status.ok()) return RpcError("Attach", status);
  absl::StatusOr<int> code = RunInteractive(response.url(), options);
  if (!code.ok()) return code.status();
  *exit_code = *code;
  return absl::OkStatus();
}

}  // namespace kapal::ctl
