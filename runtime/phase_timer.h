#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include "metrics/metrics.h"

namespace kapal::runtime {

// Where the time of a pod's or container's creation goes, phase by phase, as the histogram
// kapal_runtime_phase_seconds{operation, phase} (and one debug log line per operation): the
// figures to look at before making a step faster.
class PhaseMetrics {
 public:
  explicit PhaseMetrics(metrics::Registry& registry);
  void Observe(const std::string& operation, const std::string& phase, double seconds);

 private:
  prometheus::Family<prometheus::Histogram>& phases_;
};

// Times one operation: each Mark ends the phase that ran since the previous mark (or the start).
class PhaseTimer {
 public:
  PhaseTimer(PhaseMetrics& metrics, std::string operation)
      : metrics_(metrics), operation_(std::move(operation)), last_(Clock::now()), start_(last_) {}

  void Mark(const char* phase);
  // "12.3 ms: namespaces 3.1, infra 5.0, cni_add 4.2" (milliseconds).
  std::string Summary() const;

 private:
  using Clock = std::chrono::steady_clock;
  PhaseMetrics& metrics_;
  std::string operation_;
  Clock::time_point last_;
  Clock::time_point start_;
  std::vector<std::pair<std::string, double>> phases_ms_;
};

}  // namespace kapal::runtime
