#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "api/cri_messages.h"
#include "base/files.h"
#include "runtime/cgroups.h"
#include "runtime/node_state.h"
#include "snapshotter/snapshotter.h"

namespace kapal::runtime {

// Resource usage of containers and pods as kubelet polls it (every 10 s, for every container):
// cgroup counters (CPU, memory, processes), the writable layer's bytes and inodes, and the pod's
// network counters read inside its network namespace. Only files are read; nothing is walked
// but a container's own writable layer.
class Stats {
 public:
  Stats(const Cgroups& cgroups, CgroupLayout layout, NodeState& state,
        snapshotter::Snapshotter& snapshots, std::string snapshots_root)
      : cgroups_(cgroups),
        layout_(layout),
        state_(state),
        snapshots_(snapshots),
        snapshots_root_(std::move(snapshots_root)) {}

  absl::StatusOr<runtime::v1::ContainerStats> OfContainer(const std::string& id);
  // The container's cgroup counters as read (more than CRI's stats carry: block I/O, pids).
  absl::StatusOr<CgroupSample> SampleOfContainer(const std::string& id);
  // Containers that are created or running (exited ones have no cgroup to read).
  std::vector<runtime::v1::ContainerStats> OfContainers(
      const runtime::v1::ContainerStatsFilter& filter);
  absl::StatusOr<runtime::v1::PodSandboxStats> OfPod(const std::string& id);
  std::vector<runtime::v1::PodSandboxStats> OfPods(
      const runtime::v1::PodSandboxStatsFilter& filter);
  // CRI's ListPodSandboxMetrics: every pod's, see sandbox_metrics.h.
  std::vector<runtime::v1::PodSandboxMetrics> MetricsOfPods();

 private:
  runtime::v1::ContainerStats Measure(const Container& container, const Pod* pod);
  runtime::v1::PodSandboxStats MeasurePod(const Pod& pod, const std::vector<Container>& containers);
  void FillCpuAndMemory(const std::string& key, const CgroupSample& sample, int64_t now,
                        runtime::v1::CpuUsage* cpu, runtime::v1::MemoryUsage* memory);
  // Bytes and inodes of the container's writable layer; none when it has no snapshot.
  std::optional<base::TreeUsage> WritableLayerUsage(const Container& c);
  // CPU use since the last sample of KEY, in nano-cores (0 on the first sample).
  uint64_t NanoCores(const std::string& key, uint64_t usage_ns, int64_t now_ns);

  const Cgroups& cgroups_;
  CgroupLayout layout_;
  NodeState& state_;
  snapshotter::Snapshotter& snapshots_;
  std::string snapshots_root_;
  std::mutex samples_mutex_;
  std::map<std::string, std::pair<int64_t, uint64_t>> last_cpu_;  // key -> (time, usage)
};

// One interface's counters from /proc/net/dev.
struct InterfaceCounters {
  std::string name;
  uint64_t rx_bytes = 0, rx_packets = 0, rx_errors = 0, rx_dropped = 0;
  uint64_t tx_bytes = 0, tx_packets = 0, tx_errors = 0, tx_dropped = 0;
};
// The interfaces of the network namespace pinned at NETNS_PATH, lo left out.
absl::StatusOr<std::vector<InterfaceCounters>> ReadInterfaceCounters(const std::string& netns_path);
// The same as CRI's NetworkUsage: eth0 as the default.
absl::StatusOr<runtime::v1::NetworkUsage> ReadNetworkUsage(const std::string& netns_path);

// True when LABELS has every key of SELECTOR with its value (CRI's label_selector).
bool LabelsMatch(const google::protobuf::Map<std::string, std::string>& labels,
                 const google::protobuf::Map<std::string, std::string>& selector);

}  // namespace kapal::runtime
