#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "api/cri_messages.h"
#include "runtime/cgroups.h"
#include "runtime/records.h"
#include "runtime/stats.h"

namespace kapal::runtime {

// CRI's ListMetricDescriptors: every metric ListPodSandboxMetrics sends, with cAdvisor's names
// and labels (container, id, image, name, namespace, pod; fs metrics add device, network ones
// interface), so what was built on kubelet's /metrics/cadvisor keeps working when kubelet reads
// them from the runtime (PodAndContainerStatsFromCRI).
std::vector<runtime::v1::MetricDescriptor> SandboxMetricDescriptors();

// What was read of one container for its metrics.
struct ContainerMeasurement {
  Container container;
  std::string cgroup;  // its path below the hierarchy's root: the `id` label, as cAdvisor's
  std::optional<CgroupSample> sample;
  std::optional<uint64_t> writable_layer_bytes;
  std::string writable_layer_device;  // the `device` label: where writable layers live
};

// What was read of one pod: its cgroup's counters, its interfaces, its containers'.
struct PodMeasurement {
  Pod pod;
  std::string cgroup;
  std::optional<CgroupSample> sample;
  std::vector<InterfaceCounters> interfaces;
  std::vector<ContainerMeasurement> containers;
};

// The metrics of one pod (its cgroup's and network's, labelled container="") and of its
// containers, at NOW (ns since the epoch). Values are whole numbers, as CRI's Metric holds
// them: seconds are truncated.
runtime::v1::PodSandboxMetrics SandboxMetricsOf(const PodMeasurement& measured, int64_t now);

}  // namespace kapal::runtime
