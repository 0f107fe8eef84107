#pragma once

// builder: Dockerfile builds in the core, for every door (the Docker API's POST /build and
// `kapalctl build`). This header: the Dockerfile's syntax (instructions, stages, the shell-like
// word expansion of $VAR), with no knowledge of images or containers.

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kapal::builder {

// One instruction as written: its keyword, its --flags, and the rest of its text (continuation
// lines joined, comments dropped).
struct Instruction {
  int line = 0;                                            // where it starts, from 1
  std::string keyword;                                     // upper case: RUN, COPY, ...
  std::vector<std::pair<std::string, std::string>> flags;  // --chown=1:1 → {"chown", "1:1"}
  std::string rest;                                        // after the keyword and flags
  // The exec form: REST was a JSON array of strings (RUN, CMD, ENTRYPOINT, SHELL, COPY, ADD,
  // VOLUME, HEALTHCHECK's CMD).
  std::optional<std::vector<std::string>> json;

  // "RUN echo hi", for step lines and image history.
  std::string Text() const;
  std::optional<std::string> Flag(const std::string& name) const;
};

struct Stage {
  Instruction from;
  std::string base;  // the image of FROM (still with $ARGs), or "scratch"
  std::string name;  // of `FROM base AS name`, lower case; "" when unnamed
  std::vector<Instruction> instructions;
};

struct Dockerfile {
  char escape = '\\';
  std::vector<Instruction> global_args;  // ARGs before the first FROM
  std::vector<Stage> stages;
  int Steps() const;  // instructions counted as Docker numbers them ("Step 3/9")
};

// Parses a Dockerfile. Errors are INVALID_ARGUMENT and name the line:
// "Dockerfile line 4: unknown instruction: RUNN".
absl::StatusOr<Dockerfile> ParseDockerfile(absl::string_view text);

// One instruction on one line (an ONBUILD trigger).
absl::StatusOr<Instruction> ParseInstructionLine(absl::string_view text, char escape = '\\');

// The value of a variable, or nullopt when it is not set.
using Lookup = std::function<std::optional<std::string>(const std::string&)>;

// Docker's word processing (its shell_parser): quotes removed, the escape character honoured,
// $NAME, ${NAME}, ${NAME:-default} and ${NAME:+alternative} expanded outside single quotes.
absl::StatusOr<std::string> ExpandWord(absl::string_view word, const Lookup& lookup,
                                       char escape = '\\');
// The same, split into words on unquoted whitespace (EXPOSE, COPY's sources).
absl::StatusOr<std::vector<std::string>> ExpandWords(absl::string_view text, const Lookup& lookup,
                                                     char escape = '\\');
// Splits TEXT on unquoted whitespace, keeping quotes and escapes (expanded later, word by word).
std::vector<std::string> SplitRawWords(absl::string_view text, char escape = '\\');

struct Assignment {
  std::string name;
  std::string value;
  bool has_value = true;  // false for `ARG NAME` without a default
};

// ENV, LABEL and ARG's NAME=VALUE pairs (also the old `ENV NAME VALUE` form), values expanded.
absl::StatusOr<std::vector<Assignment>> ParseAssignments(const Instruction& instruction,
                                                         const Lookup& lookup, char escape = '\\');

}  // namespace kapal::builder
