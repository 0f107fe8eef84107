#pragma once

#include <string>

#include "api/cri_messages.h"

namespace kapal::runtime {

// A signal name or number as images write StopSignal ("SIGTERM", "TERM", "15", "SIGRTMIN+3");
// 0 if unknown.
int ParseSignal(const std::string& text);

// The Linux number of CRI's Signal (ContainerConfig.stop_signal): CRI numbers its enum in
// alphabetical order (SIGTERM is 23 there, SIGKILL 13), so it is mapped by name. 0 for
// RUNTIME_DEFAULT or a value this build does not know.
int SignalNumberOf(runtime::v1::Signal signal);

}  // namespace kapal::runtime
