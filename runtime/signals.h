#pragma once

#include <string>

namespace kapal::runtime {

// A signal name or number as images write StopSignal ("SIGTERM", "TERM", "15"); 0 if unknown.
int ParseSignal(const std::string& text);

}  // namespace kapal::runtime
