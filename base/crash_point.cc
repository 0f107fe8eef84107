#include "base/crash_point.h"

#include <signal.h>

#include <cstdlib>

namespace kapal::base {

void CrashPoint(absl::string_view point) {
  const char* armed = std::getenv(kCrashPointVariable);
  if (armed != nullptr && point == armed) ::raise(SIGKILL);
}

}  // namespace kapal::base
