#include "runtime/signals.h"

#include <signal.h>

#include <cstring>
#include <map>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"

namespace kapal::runtime {

int ParseSignal(const std::string& text) {
  static const std::map<std::string, int> kNames = {
      {"ABRT", SIGABRT}, {"ALRM", SIGALRM}, {"BUS", SIGBUS},       {"CHLD", SIGCHLD},
      {"CLD", SIGCHLD},  {"CONT", SIGCONT}, {"FPE", SIGFPE},       {"HUP", SIGHUP},
      {"ILL", SIGILL},   {"INT", SIGINT},   {"IO", SIGIO},         {"IOT", SIGIOT},
      {"KILL", SIGKILL}, {"PIPE", SIGPIPE}, {"POLL", SIGPOLL},     {"PROF", SIGPROF},
      {"PWR", SIGPWR},   {"QUIT", SIGQUIT}, {"SEGV", SIGSEGV},     {"STKFLT", SIGSTKFLT},
      {"STOP", SIGSTOP}, {"SYS", SIGSYS},   {"TERM", SIGTERM},     {"TRAP", SIGTRAP},
      {"TSTP", SIGTSTP}, {"TTIN", SIGTTIN}, {"TTOU", SIGTTOU},     {"URG", SIGURG},
      {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"VTALRM", SIGVTALRM}, {"WINCH", SIGWINCH},
      {"XCPU", SIGXCPU}, {"XFSZ", SIGXFSZ}};
  std::string name = absl::AsciiStrToUpper(absl::StripAsciiWhitespace(text));
  int number = 0;
  if (absl::SimpleAtoi(name, &number)) return number > 0 && number < 65 ? number : 0;
  if (absl::StartsWith(name, "SIG")) name = name.substr(3);
  // Real-time signals: RTMIN, RTMIN+N, RTMAX-N (Docker's spelling), and CRI's RTMINPLUSN and
  // RTMAXMINUSN.
  for (const auto& [prefix, base, sign] :
       {std::tuple<const char*, int, int>{"RTMINPLUS", SIGRTMIN, 1},
        {"RTMAXMINUS", SIGRTMAX, -1},
        {"RTMIN+", SIGRTMIN, 1},
        {"RTMAX-", SIGRTMAX, -1}}) {
    int offset = 0;
    if (absl::StartsWith(name, prefix) && absl::SimpleAtoi(name.substr(strlen(prefix)), &offset) &&
        offset >= 0 && offset <= SIGRTMAX - SIGRTMIN) {
      return base + sign * offset;
    }
  }
  if (name == "RTMIN") return SIGRTMIN;
  if (name == "RTMAX") return SIGRTMAX;
  auto found = kNames.find(name);
  return found == kNames.end() ? 0 : found->second;
}

int SignalNumberOf(runtime::v1::Signal signal) {
  if (signal == runtime::v1::RUNTIME_DEFAULT || !runtime::v1::Signal_IsValid(signal)) return 0;
  return ParseSignal(runtime::v1::Signal_Name(signal));
}

runtime::v1::Signal CriSignalOf(int number) {
  if (number <= 0) return runtime::v1::RUNTIME_DEFAULT;
  const google::protobuf::EnumDescriptor* signals = runtime::v1::Signal_descriptor();
  for (int i = 0; i < signals->value_count(); ++i) {
    const google::protobuf::EnumValueDescriptor* value = signals->value(i);
    if (value->number() != runtime::v1::RUNTIME_DEFAULT && ParseSignal(value->name()) == number) {
      return static_cast<runtime::v1::Signal>(value->number());
    }
  }
  return runtime::v1::RUNTIME_DEFAULT;
}

}  // namespace kapal::runtime
