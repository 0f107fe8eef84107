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

// The CRI Signal of a Linux signal number (ContainerStatus.stop_signal): the first enum value
// whose name means that number (SIGIOT and SIGABRT are both 6: SIGABRT, the first, is given).
// RUNTIME_DEFAULT for 0 or a number CRI has no name for.
runtime::v1::Signal CriSignalOf(int number);

}  // namespace kapal::runtime
