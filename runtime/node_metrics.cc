#include "runtime/node_metrics.h"

#include <signal.h>

#include <map>
#include <mutex>
#include <vector>

#include "prometheus/metric_family.h"
#include "runtime/records.h"

namespace kapal::runtime {

std::vector<prometheus::MetricFamily> NodeMetrics::Collect() const {
  std::map<std::string, double> pods = {{"ready", 0}, {"notready", 0}};
  std::map<std::string, double> containers = {
      {"created", 0}, {"running", 0}, {"exited", 0}, {"unknown", 0}};
  double shims = 0;
  {
    std::lock_guard node_lock(state_.mutex);
    for (const auto& [id, pod] : state_.pods) pods[pod.ready ? "ready" : "notready"] += 1;
    for (const auto& [id, c] : state_.containers) {
      containers[ContainerStateWord(c.state)] += 1;
      // A shim lives as long as its container is not cleaned up; signal 0 only asks.
      if (c.shim_pid > 0 && ::kill(c.shim_pid, 0) == 0) shims += 1;
    }
  }
  return {
      metrics::GaugeFamily("pods", "Pod sandboxes by state", "state", pods),
      metrics::GaugeFamily("containers", "Containers by state", "state", containers),
      metrics::GaugeFamily("shims_alive", "kapal-shim processes of the node's containers that run",
                           "", {{"", shims}})};
}

NodeMetrics::NodeMetrics(metrics::Registry& registry, NodeState& state)
    : state_(state),
      starts_(prometheus::BuildCounter()
                  .Name(metrics::Registry::Name("container_starts_total"))
                  .Help("Containers started")
                  .Register(registry.Prometheus())),
      exits_(prometheus::BuildCounter()
                 .Name(metrics::Registry::Name("container_exits_total"))
                 .Help("Container exits seen, by reason (Completed, Error, OOMKilled, StartError)")
                 .Register(registry.Prometheus())),
      restarts_(prometheus::BuildCounter()
                    .Name(metrics::Registry::Name("container_restarts_total"))
                    .Help("Containers started as a later attempt of the same container (kubelet's "
                          "restarts: metadata.attempt above 0)")
                    .Register(registry.Prometheus())
                    .Add({})),
      scrape_(registry.AddScrapeFunction([this] { return Collect(); })) {}

void NodeMetrics::ContainerStarted(uint32_t attempt) {
  starts_.Add({}).Increment();
  if (attempt > 0) restarts_.Increment();
}

void NodeMetrics::ContainerExited(const std::string& reason) {
  exits_.Add({{"reason", reason}}).Increment();
}

}  // namespace kapal::runtime
