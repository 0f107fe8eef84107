#include "runtime/signals.h"

#include <gtest/gtest.h>
#include <signal.h>

namespace kapal::runtime {
namespace {

TEST(SignalsTest, ImageStopSignalsByNameOrNumber) {
  EXPECT_EQ(ParseSignal("SIGTERM"), SIGTERM);
  EXPECT_EQ(ParseSignal("quit"), SIGQUIT);
  EXPECT_EQ(ParseSignal(" 9 "), SIGKILL);
  EXPECT_EQ(ParseSignal("SIGWINCH"), SIGWINCH);
  EXPECT_EQ(ParseSignal("SIGRTMIN+3"), SIGRTMIN + 3);
  EXPECT_EQ(ParseSignal("RTMAX-1"), SIGRTMAX - 1);
  EXPECT_EQ(ParseSignal("SIGNOPE"), 0);
  EXPECT_EQ(ParseSignal("99"), 0);
  EXPECT_EQ(ParseSignal("SIGRTMIN+99"), 0);
}

// CRI's value of that name (signal.h's macros hide the enum's own names here).
int CriSignal(const std::string& name) {
  runtime::v1::Signal value = runtime::v1::RUNTIME_DEFAULT;
  EXPECT_TRUE(runtime::v1::Signal_Parse(name, &value)) << name;
  return SignalNumberOf(value);
}

// CRI's enum is alphabetical, not Linux's numbering: its SIGTERM is 23 (SIGUSR2 on Linux) and
// its SIGKILL 13 (SIGPIPE); a cast would send the wrong signal.
TEST(SignalsTest, CriStopSignalsMapByName) {
  EXPECT_EQ(CriSignal("SIGTERM"), SIGTERM);
  EXPECT_EQ(CriSignal("SIGKILL"), SIGKILL);
  EXPECT_EQ(CriSignal("SIGQUIT"), SIGQUIT);
  EXPECT_EQ(CriSignal("SIGUSR1"), SIGUSR1);
  EXPECT_EQ(CriSignal("SIGCLD"), SIGCHLD);
  EXPECT_EQ(CriSignal("SIGRTMIN"), SIGRTMIN);
  EXPECT_EQ(CriSignal("SIGRTMINPLUS2"), SIGRTMIN + 2);
  EXPECT_EQ(CriSignal("SIGRTMAXMINUS1"), SIGRTMAX - 1);
  EXPECT_EQ(CriSignal("SIGRTMAX"), SIGRTMAX);
  EXPECT_EQ(SignalNumberOf(runtime::v1::RUNTIME_DEFAULT), 0);
  // Every value of the enum names a signal this host has.
  for (int value = runtime::v1::Signal_MIN + 1; value <= runtime::v1::Signal_MAX; ++value) {
    if (!runtime::v1::Signal_IsValid(value)) continue;
    EXPECT_GT(SignalNumberOf(static_cast<runtime::v1::Signal>(value)), 0)
        << runtime::v1::Signal_Name(static_cast<runtime::v1::Signal>(value));
  }
}

// ContainerStatus.stop_signal goes back the same way: kubelet reads it by CRI's names.
TEST(SignalsTest, StatusStopSignalsMapBackByName) {
  EXPECT_EQ(runtime::v1::Signal_Name(CriSignalOf(SIGTERM)), "SIGTERM");
  EXPECT_EQ(runtime::v1::Signal_Name(CriSignalOf(SIGKILL)), "SIGKILL");
  EXPECT_EQ(runtime::v1::Signal_Name(CriSignalOf(SIGUSR1)), "SIGUSR1");
  EXPECT_EQ(runtime::v1::Signal_Name(CriSignalOf(SIGCHLD)), "SIGCHLD");
  EXPECT_EQ(runtime::v1::Signal_Name(CriSignalOf(SIGRTMIN + 3)), "SIGRTMINPLUS3");
  EXPECT_EQ(runtime::v1::Signal_Name(CriSignalOf(SIGRTMAX - 2)), "SIGRTMAXMINUS2");
  EXPECT_EQ(CriSignalOf(0), runtime::v1::RUNTIME_DEFAULT);
  for (int value = runtime::v1::Signal_MIN + 1; value <= runtime::v1::Signal_MAX; ++value) {
    if (!runtime::v1::Signal_IsValid(value)) continue;
    int number = SignalNumberOf(static_cast<runtime::v1::Signal>(value));
    EXPECT_EQ(SignalNumberOf(CriSignalOf(number)), number);
  }
}

}  // namespace
}  // namespace kapal::runtime
