#pragma once

// shim: kapal-shim, one small static process per container (like conmon) that runs the OCI
// runtime's create, copies the container's output into the CRI log and records its exit. This
// header and cri_log.h are what kapald shares with it; it must never link the core or gRPC.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

// What kapal-shim records when its container ends, and kapald reads back (also after a restart of
// kapald, which may happen between the two). Kept free of abseil and gRPC so the shim stays small.
namespace kapal::shim {

struct ExitRecord {
  // The exit code as a shell reports it: the process's code, or 128 + signal when killed.
  int exit_code = 0;
  // The signal that killed the process, 0 when it exited by itself.
  int signal = 0;
  // Nanoseconds since the Unix epoch.
  int64_t finished_at_ns = 0;
  // The kernel's OOM killer ended a process of the container's cgroup.
  bool oom_killed = false;
};

// "exit_code=137\nsignal=9\nfinished_at_ns=...\noom_killed=1\n"
std::string FormatExitRecord(const ExitRecord& record);
// nullopt for text that is not a complete record (a torn write cannot happen: the shim writes
// the file through a rename, but a hand-edited or truncated file must not read as exit code 0).
std::optional<ExitRecord> ParseExitRecord(const std::string& text);

// The file names inside a container's bundle directory that kapald and the shim agree on.
inline constexpr const char* kExitFile = "exit";
inline constexpr const char* kControlSocket = "control.sock";
inline constexpr const char* kConsoleSocket = "console.sock";
// Attach clients connect here. What they write goes to the container's stdin (when it has one);
// shutting down their write side ends their input (with --stdin-once: the container's stdin). The
// shim sends them the container's output as frames: one byte kAttachStdout or kAttachStderr, the
// length as 4 bytes big-endian, the bytes. A client that falls more than kAttachBacklog bytes
// behind is dropped, so a slow client never stalls the container. When the container has ended
// and its output is drained, the shim closes every client.
inline constexpr const char* kAttachSocket = "attach.sock";
inline constexpr unsigned char kAttachStdout = 1;
inline constexpr unsigned char kAttachStderr = 2;
inline constexpr size_t kAttachFrameHeader = 5;
inline constexpr size_t kAttachBacklog = 4 * 1024 * 1024;
inline constexpr const char* kPidFile = "pid";
inline constexpr const char* kShimLog = "shim.log";
inline constexpr const char* kShimPidFile = "shim.pid";

}  // namespace kapal::shim
