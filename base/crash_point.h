#pragma once

#include "absl/strings/string_view.h"

namespace kapal::base {

// The environment variable that arms a crash point: KAPAL_CRASH_POINT=runpod-after-cni-add.
inline constexpr char kCrashPointVariable[] = "KAPAL_CRASH_POINT";

// A named point where a crash would leave something on the host (etcd's gofail, FoundationDB's
// buggify): when KAPAL_CRASH_POINT names POINT, the process SIGKILLs itself right here, so a
// test can crash the daemon exactly there instead of after a sleep, and check the recovery.
// Unarmed (always, outside such tests) it costs one getenv.
void CrashPoint(absl::string_view point);

}  // namespace kapal::base
