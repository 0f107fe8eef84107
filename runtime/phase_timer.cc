#include "runtime/phase_timer.h"

#include "absl/strings/str_format.h"

namespace kapal::runtime {

PhaseMetrics::PhaseMetrics(metrics::Registry& registry)
    : phases_(prometheus::BuildHistogram()
                  .Name(metrics::Registry::Name("runtime_phase_seconds"))
                  .Help("Time of each phase of a pod's or container's run, create, start, "
                        "stop and remove (operation run_pod, stop_pod, remove_pod, "
                        "create_container, start_container, stop_container, remove_container)")
                  .Register(registry.Prometheus())) {}

void PhaseMetrics::Observe(const std::string& operation, const std::string& phase, double seconds) {
  // From 0.1 ms (writing a small file) to 10 s (a runtime stuck on a busy node).
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10};
  phases_.Add({{"operation", operation}, {"phase", phase}}, kBuckets).Observe(seconds);
}

void PhaseTimer::Mark(const char* phase) {
  Clock::time_point now = Clock::now();
  double seconds = std::chrono::duration<double>(now - last_).count();
  last_ = now;
  metrics_.Observe(operation_, phase, seconds);
  phases_ms_.emplace_back(phase, seconds * 1000);
}

std::string PhaseTimer::Summary() const {
  std::string text = absl::StrFormat(
      "%.1f ms:", std::chrono::duration<double, std::milli>(last_ - start_).count());
  for (const auto& [phase, ms] : phases_ms_) absl::StrAppendFormat(&text, " %s %.1f", phase, ms);
  return text;
}

}  // namespace kapal::runtime
