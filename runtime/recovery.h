#pragma once

#include "absl/status/status.h"
#include "base/logger.h"
#include "runtime/containers.h"
#include "runtime/exit_monitor.h"
#include "runtime/handlers.h"
#include "runtime/node_state.h"
#include "runtime/options.h"
#include "runtime/records.h"
#include "runtime/sandboxes.h"
#include "snapshotter/snapshotter.h"

namespace kapal::runtime {

// kapald's start after a stop or a crash: loads the records and brings them up to date with
// what happened meanwhile (exits of containers, a reboot that took namespaces away), and
// removes what a crash in the middle of creating something left behind.
class Recovery {
 public:
  Recovery(const Options& options, NodeState& state, RecordStore& records, const Handlers& handlers,
           Containers& containers, Sandboxes& sandboxes, ExitMonitor& exits,
           snapshotter::Snapshotter& snapshots, base::Logger& logger)
      : options_(options),
        state_(state),
        records_(records),
        handlers_(handlers),
        containers_(containers),
        sandboxes_(sandboxes),
        exits_(exits),
        snapshots_(snapshots),
        logger_(logger) {}

  absl::Status Run();

 private:
  const Options& options_;
  NodeState& state_;
  RecordStore& records_;
  const Handlers& handlers_;
  Containers& containers_;
  Sandboxes& sandboxes_;
  ExitMonitor& exits_;
  snapshotter::Snapshotter& snapshots_;
  base::Logger& logger_;
};

}  // namespace kapal::runtime
