#pragma once

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "runtime/containers.h"
#include "runtime/exec_process.h"
#include "streaming/transport.h"

// What an exec and an attach session do once the client's channels are open: pump stdin in and
// output out without blocking on either side, apply resizes, and report how it ended on the
// error channel.
namespace kapal::streaming {

// Called with a terminal size from the resize channel.
using ResizeFunction = std::function<void(uint16_t columns, uint16_t rows)>;

// Runs until the process has ended and its output is sent (then reports its exit code), or the
// client goes away (then the process tree is ended). CMD names the command in a failure status.
void RunExecSession(CommandTransport& transport, runtime::ExecProcess& process,
                    const std::vector<std::string>& cmd);

// Runs until the container ends (its shim closes the attach socket) or the client goes away (a
// detach: the container goes on).
void RunAttachSession(CommandTransport& transport, runtime::AttachedContainer& attached,
                      const ResizeFunction& resize);

// Reports STATUS on the error channel (a Kubernetes Status object, or its text for v1-v3) and
// ends the output channels. OK is success; EXIT_CODE > 0 a NonZeroExitCode failure.
void FinishCommand(CommandTransport& transport, const absl::Status& status, int exit_code,
                   const std::vector<std::string>& cmd);

}  // namespace kapal::streaming
