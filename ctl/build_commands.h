#pragma once

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "ctl/commands.h"

namespace kapal::ctl {

struct BuildCommand {
  std::string directory;   // the build context
  std::string dockerfile;  // -f; "" is DIRECTORY/Dockerfile
  std::vector<std::string> tags;
  std::vector<std::string> build_args;  // NAME=VALUE, or NAME to take it from the environment
  std::vector<std::string> labels;      // NAME=VALUE
  std::string target;
  bool no_cache = false;
  bool pull = false;
  std::string network;
  bool quiet = false;  // only the image id
};

// `kapalctl build`: sends DIRECTORY as a tar (without what its .dockerignore excludes, as the
// docker CLI does) and prints the build's output as it comes.
// A failing RUN's exit code goes into EXIT_CODE (kapalctl exits with it, as docker build does).
absl::Status RunBuild(CriClient& client, const BuildCommand& command, std::ostream& out,
                      int* exit_code);

// Whether RELATIVE (a path in the context) is excluded by the .dockerignore PATTERNS: the last
// pattern that matches it or one of its parents decides; "!" patterns re-include.
bool Ignored(const std::vector<std::string>& patterns, const std::string& relative);

}  // namespace kapal::ctl
