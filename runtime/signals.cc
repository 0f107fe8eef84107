#include "runtime/signals.h"

#include <signal.h>

#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"

namespace kapal::runtime {

int ParseSignal(const std::string& text) {
  static const std::map<std::string, int> kNames = {
      {"HUP", SIGHUP},   {"INT", SIGINT},     {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
      {"USR1", SIGUSR1}, {"USR2", SIGUSR2},   {"TERM", SIGTERM}, {"STOP", SIGSTOP},
      {"CONT", SIGCONT}, {"WINCH", SIGWINCH}, {"PWR", SIGPWR},   {"ABRT", SIGABRT},
      {"ALRM", SIGALRM}};
  std::string name = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(text));
  int number = 0;
  if (absl::SimpleAtoi(name, &number)) return number > 0 && number < 65 ? number : 0;
  if (absl::StartsWith(name, "SIG")) name = name.substr(3);
  auto found = kNames.find(name);
  return found == kNames.end() ? 0 : found->second;
}

}  // namespace kapal::runtime
