#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "metrics/metrics.h"
#include "runtime/node_state.h"

namespace kapal::runtime {

// The node's pods and containers as Prometheus sees them: kapal_pods{state} and
// kapal_containers{state} and kapal_shims_alive, read from the node's records at scrape time;
// kapal_container_starts_total, kapal_container_restarts_total and
// kapal_container_exits_total{reason} (OOMKilled among the reasons), counted as they happen.
class NodeMetrics {
 public:
  NodeMetrics(metrics::Registry& registry, NodeState& state);
  NodeMetrics(const NodeMetrics&) = delete;
  NodeMetrics& operator=(const NodeMetrics&) = delete;

  // ATTEMPT: the container's metadata.attempt (kubelet counts its restarts there).
  void ContainerStarted(uint32_t attempt);
  void ContainerExited(const std::string& reason);

 private:
  std::vector<prometheus::MetricFamily> Collect() const;

  NodeState& state_;
  prometheus::Family<prometheus::Counter>& starts_;
  prometheus::Family<prometheus::Counter>& exits_;
  prometheus::Counter& restarts_;
  // Last: the registry may outlive the node, and scrapes stop reading it before the rest goes.
  std::unique_ptr<metrics::Registry::ScrapeHandle> scrape_;
};

}  // namespace kapal::runtime
