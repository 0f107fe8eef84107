#pragma once

#include <chrono>
#include <string>
#include <thread>

#include "absl/status/status.h"
#include "base/logger.h"
#include "base/unique_fd.h"
#include "runtime/handlers.h"
#include "runtime/node_events.h"
#include "runtime/node_metrics.h"
#include "runtime/node_state.h"
#include "runtime/records.h"

namespace kapal::runtime {

// Waits up to LIMIT for the exit record kapal-shim writes into BUNDLE when its container ends;
// false if none came. Looks every millisecond for the first 100 ms (a killed process is usually
// gone by then; a look is one access(2)), then every 10 ms.
bool AwaitExitRecord(const std::string& bundle, std::chrono::milliseconds limit);

// Learns of container exits: each kapal-shim writes its container's exit record into the bundle
// and notes the id in STATE/exits; this watches that directory (inotify) and records the exit
// in the store as it happens, not only when a client asks.
class ExitMonitor {
 public:
  ExitMonitor(NodeState& state, RecordStore& records, const Handlers& handlers,
              NodeMetrics& metrics, NodeEvents& events, base::Logger& logger, std::string exit_dir);
  ~ExitMonitor();  // stops the watcher thread

  // Records the exits noted so far, then watches for more.
  absl::Status Start();

  // Brings a created or running container up to date: reads the shim's exit record, or notices
  // a shim that died without one. A container must not run unsupervised (nobody would record
  // its output or its exit), so one whose shim died is ended and reported with that reason.
  // The caller holds the state's mutex.
  void RefreshLocked(Container& container);

  const std::string& ExitDir() const { return exit_dir_; }

 private:
  void Watch();
  void RecordExitsNoted();

  NodeState& state_;
  RecordStore& records_;
  const Handlers& handlers_;
  NodeMetrics& metrics_;
  NodeEvents& events_;
  base::Logger& logger_;
  std::string exit_dir_;
  base::UniqueFd exit_watch_;  // inotify on exit_dir_
  base::UniqueFd stop_watch_;  // eventfd that ends the watcher thread
  std::thread watcher_;
};

}  // namespace kapal::runtime
