#include "runtime/checkpoint.h"

#include <chrono>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/child_process.h"

namespace kapal::runtime {

absl::Status CheckpointSupport::Check() {
  std::call_once(checked_, [this] {
    absl::StatusOr<base::CommandResult> checked =
        base::RunCommand({criu_binary_, "check"}, "", std::chrono::seconds(30));
    if (!checked.ok()) {
      verdict_ = absl::FailedPreconditionError(
          absl::StrCat("checkpointing needs CRIU (Debian package criu), which cannot be run here: ",
                       checked.status().message()));
      return;
    }
    if (checked->Succeeded()) {
      verdict_ = absl::OkStatus();
      return;
    }
    // CRIU prints its reasons as "Error (file:line): ..." lines; the first names the cause.
    std::string reason;
    for (absl::string_view line :
         absl::StrSplit(absl::StrCat(checked->errors, "\n", checked->output), '\n')) {
      line = absl::StripAsciiWhitespace(line);
      if (!line.empty() && reason.empty()) reason = std::string(line);
    }
    verdict_ = absl::FailedPreconditionError(
        absl::StrCat("CRIU cannot checkpoint on this kernel (`criu check`: ",
                     reason.empty() ? checked->Describe() : reason, ")"));
  });
  return verdict_;
}

}  // namespace kapal::runtime
