#include "runtime/stats.h"

#include <unistd.h>

#include <cerrno>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/files.h"
#include "base/unique_fd.h"
#include "runtime/namespaces.h"
#include "runtime/sandbox_metrics.h"

namespace kapal::runtime {

namespace {

void SetIf(const std::optional<uint64_t>& value, runtime::v1::UInt64Value* out) {
  if (value.has_value()) out->set_value(*value);
}

bool Measurable(const Container& c) {
  return c.state == runtime::v1::CONTAINER_CREATED || c.state == runtime::v1::CONTAINER_RUNNING;
}

}  // namespace

bool LabelsMatch(const google::protobuf::Map<std::string, std::string>& labels,
                 const google::protobuf::Map<std::string, std::string>& selector) {
  for (const auto& [key, value] : selector) {
    auto found = labels.find(key);
    if (found == labels.end() || found->second != value) return false;
  }
  return true;
}

absl::StatusOr<std::vector<InterfaceCounters>> ReadInterfaceCounters(
    const std::string& netns_path) {
  // /proc/thread-self/net shows the counters of the thread's own namespace.
  absl::StatusOr<std::string> table;
  absl::Status entered =
      InNetworkNamespace(netns_path, [&] { table = base::ReadFile("/proc/thread-self/net/dev"); });
  if (!entered.ok()) return entered;
  if (!table.ok()) return table.status();
  std::vector<InterfaceCounters> all;
  for (absl::string_view line : absl::StrSplit(*table, '\n', absl::SkipEmpty())) {
    size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;  // the two header lines
    std::string name(absl::StripAsciiWhitespace(line.substr(0, colon)));
    if (name == "lo") continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line.substr(colon + 1), ' ', absl::SkipEmpty());
    if (fields.size() < 12) continue;
    // receive: bytes packets errs drop fifo frame compressed multicast; then transmit.
    InterfaceCounters counters;
    counters.name = name;
    uint64_t* targets[] = {&counters.rx_bytes,   &counters.rx_packets, &counters.rx_errors,
                           &counters.rx_dropped, &counters.tx_bytes,   &counters.tx_packets,
                           &counters.tx_errors,  &counters.tx_dropped};
    const size_t columns[] = {0, 1, 2, 3, 8, 9, 10, 11};
    for (size_t i = 0; i < 8; ++i) (void)absl::SimpleAtoi(fields[columns[i]], targets[i]);
    all.push_back(std::move(counters));
  }
  return all;
}

absl::StatusOr<runtime::v1::NetworkUsage> ReadNetworkUsage(const std::string& netns_path) {
  absl::StatusOr<std::vector<InterfaceCounters>> counters = ReadInterfaceCounters(netns_path);
  if (!counters.ok()) return counters.status();
  runtime::v1::NetworkUsage usage;
  for (const InterfaceCounters& counted : *counters) {
    runtime::v1::NetworkInterfaceUsage* interface = usage.add_interfaces();
    interface->set_name(counted.name);
    interface->mutable_rx_bytes()->set_value(counted.rx_bytes);
    interface->mutable_rx_errors()->set_value(counted.rx_errors);
    interface->mutable_tx_bytes()->set_value(counted.tx_bytes);
    interface->mutable_tx_errors()->set_value(counted.tx_errors);
    if (counted.name == "eth0") *usage.mutable_default_interface() = *interface;
  }
  usage.set_timestamp(NowNanos());
  return usage;
}

uint64_t Stats::NanoCores(const std::string& key, uint64_t usage_ns, int64_t now_ns) {
  std::lock_guard lock(samples_mutex_);
  auto [entry, fresh] = last_cpu_.try_emplace(key, now_ns, usage_ns);
  if (fresh) return 0;
  auto [then, used] = entry->second;
  entry->second = {now_ns, usage_ns};
  if (now_ns <= then || usage_ns < used) return 0;
  return static_cast<uint64_t>(static_cast<double>(usage_ns - used) * 1e9 /
                               static_cast<double>(now_ns - then));
}

void Stats::FillCpuAndMemory(const std::string& key, const CgroupSample& sample, int64_t now,
                             runtime::v1::CpuUsage* cpu, runtime::v1::MemoryUsage* memory) {
  cpu->set_timestamp(now);
  if (sample.cpu_usage_ns.has_value()) {
    cpu->mutable_usage_core_nano_seconds()->set_value(*sample.cpu_usage_ns);
    cpu->mutable_usage_nano_cores()->set_value(NanoCores(key, *sample.cpu_usage_ns, now));
  }
  memory->set_timestamp(now);
  SetIf(sample.memory_working_set, memory->mutable_working_set_bytes());
  SetIf(sample.memory_usage, memory->mutable_usage_bytes());
  SetIf(sample.memory_rss, memory->mutable_rss_bytes());
  SetIf(sample.page_faults, memory->mutable_page_faults());
  SetIf(sample.major_page_faults, memory->mutable_major_page_faults());
  if (sample.memory_limit.has_value() && sample.memory_working_set.has_value()) {
    uint64_t limit = *sample.memory_limit, used = *sample.memory_working_set;
    memory->mutable_available_bytes()->set_value(limit > used ? limit - used : 0);
  }
}

runtime::v1::ContainerStats Stats::Measure(const Container& c, const Pod* pod) {
  runtime::v1::ContainerStats stats;
  runtime::v1::ContainerAttributes* attributes = stats.mutable_attributes();
  attributes->set_id(c.id);
  *attributes->mutable_metadata() = c.config.metadata();
  *attributes->mutable_labels() = c.config.labels();
  *attributes->mutable_annotations() = c.config.annotations();
  int64_t now = NowNanos();
  if (pod != nullptr) {
    absl::StatusOr<CgroupSample> sample =
        ReadCgroup(layout_, cgroups_.Directory(cgroups_.ContainerPath(*pod, c.id)));
    FillCpuAndMemory("container/" + c.id, sample.ok() ? *sample : CgroupSample{}, now,
                     stats.mutable_cpu(), stats.mutable_memory());
  }
  runtime::v1::FilesystemUsage* layer = stats.mutable_writable_layer();
  layer->set_timestamp(now);
  layer->mutable_fs_id()->set_mountpoint(snapshots_root_);
  if (std::optional<base::TreeUsage> usage = WritableLayerUsage(c); usage.has_value()) {
    layer->mutable_used_bytes()->set_value(static_cast<uint64_t>(usage->bytes));
    layer->mutable_inodes_used()->set_value(static_cast<uint64_t>(usage->inodes));
  }
  return stats;
}

std::optional<base::TreeUsage> Stats::WritableLayerUsage(const Container& c) {
  absl::StatusOr<snapshotter::Info> info = snapshots_.Stat(c.snapshot_key);
  if (!info.ok()) return std::nullopt;
  return base::MeasureTree(info->directory + "/fs");
}

std::vector<runtime::v1::PodSandboxMetrics> Stats::MetricsOfPods() {
  std::vector<PodMeasurement> chosen;
  {
    std::lock_guard lock(state_.mutex);
    for (const auto& [id, pod] : state_.pods) {
      PodMeasurement& measured = chosen.emplace_back();
      measured.pod = pod;
      for (const auto& [cid, c] : state_.containers) {
        if (c.pod_id == id && Measurable(c)) measured.containers.emplace_back().container = c;
      }
    }
  }
  // The reading happens without the node lock.
  for (PodMeasurement& measured : chosen) {
    measured.cgroup = cgroups_.PodParent(measured.pod);
    absl::StatusOr<CgroupSample> sample = ReadCgroup(layout_, cgroups_.Directory(measured.cgroup));
    if (sample.ok()) measured.sample = *sample;
    if (measured.pod.ready && measured.pod.own.network) {
      absl::StatusOr<std::vector<InterfaceCounters>> interfaces =
          ReadInterfaceCounters(measured.pod.dir + "/net");
      if (interfaces.ok()) measured.interfaces = std::move(*interfaces);
    }
    for (ContainerMeasurement& container : measured.containers) {
      container.cgroup = cgroups_.ContainerPath(measured.pod, container.container.id);
      absl::StatusOr<CgroupSample> of = ReadCgroup(layout_, cgroups_.Directory(container.cgroup));
      if (of.ok()) container.sample = *of;
      if (std::optional<base::TreeUsage> usage = WritableLayerUsage(container.container)) {
        container.writable_layer_bytes = static_cast<uint64_t>(usage->bytes);
      }
      container.writable_layer_device = snapshots_root_;
    }
  }
  std::vector<runtime::v1::PodSandboxMetrics> all;
  int64_t now = NowNanos();
  for (const PodMeasurement& measured : chosen) all.push_back(SandboxMetricsOf(measured, now));
  return all;
}

absl::StatusOr<runtime::v1::ContainerStats> Stats::OfContainer(const std::string& id) {
  Container container;
  std::optional<Pod> pod;
  {
    std::lock_guard lock(state_.mutex);
    absl::StatusOr<std::string> resolved = state_.ResolveContainerIdLocked(id);
    if (!resolved.ok()) return resolved.status();
    container = state_.containers.at(*resolved);
    if (auto found = state_.pods.find(container.pod_id); found != state_.pods.end()) {
      pod = found->second;
    }
  }
  return Measure(container, pod.has_value() ? &*pod : nullptr);
}

absl::StatusOr<CgroupSample> Stats::SampleOfContainer(const std::string& id) {
  Container container;
  Pod pod;
  {
    std::lock_guard lock(state_.mutex);
    absl::StatusOr<std::string> resolved = state_.ResolveContainerIdLocked(id);
    if (!resolved.ok()) return resolved.status();
    container = state_.containers.at(*resolved);
    auto found = state_.pods.find(container.pod_id);
    if (found == state_.pods.end()) {
      return absl::NotFoundError(absl::StrCat("the pod of container ", container.id, " is gone"));
    }
    pod = found->second;
  }
  return ReadCgroup(layout_, cgroups_.Directory(cgroups_.ContainerPath(pod, container.id)));
}

std::vector<runtime::v1::ContainerStats> Stats::OfContainers(
    const runtime::v1::ContainerStatsFilter& filter) {
  std::vector<std::pair<Container, std::optional<Pod>>> chosen;
  {
    std::lock_guard lock(state_.mutex);
    for (const auto& [id, c] : state_.containers) {
      if (!Measurable(c)) continue;
      if (!filter.id().empty() && !absl::StartsWith(id, filter.id())) continue;
      if (!filter.pod_sandbox_id().empty() &&
          !absl::StartsWith(c.pod_id, filter.pod_sandbox_id())) {
        continue;
      }
      if (!LabelsMatch(c.config.labels(), filter.label_selector())) continue;
      auto pod = state_.pods.find(c.pod_id);
      chosen.emplace_back(
          c, pod != state_.pods.end() ? std::optional<Pod>(pod->second) : std::nullopt);
    }
  }
  std::vector<runtime::v1::ContainerStats> all;
  for (const auto& [c, pod] : chosen) all.push_back(Measure(c, pod.has_value() ? &*pod : nullptr));
  return all;
}

runtime::v1::PodSandboxStats Stats::MeasurePod(const Pod& pod,
                                               const std::vector<Container>& containers) {
  runtime::v1::PodSandboxStats stats;
  runtime::v1::PodSandboxAttributes* attributes = stats.mutable_attributes();
  attributes->set_id(pod.id);
  *attributes->mutable_metadata() = pod.config.metadata();
  *attributes->mutable_labels() = pod.config.labels();
  *attributes->mutable_annotations() = pod.config.annotations();
  runtime::v1::LinuxPodSandboxStats* linux = stats.mutable_linux();
  int64_t now = NowNanos();
  absl::StatusOr<CgroupSample> sample =
      ReadCgroup(layout_, cgroups_.Directory(cgroups_.PodParent(pod)));
  FillCpuAndMemory("pod/" + pod.id, sample.ok() ? *sample : CgroupSample{}, now,
                   linux->mutable_cpu(), linux->mutable_memory());
  linux->mutable_process()->set_timestamp(now);
  if (sample.ok() && sample->processes.has_value()) {
    linux->mutable_process()->mutable_process_count()->set_value(*sample->processes);
  }
  if (pod.ready && pod.own.network) {
    if (absl::StatusOr<runtime::v1::NetworkUsage> network = ReadNetworkUsage(pod.dir + "/net");
        network.ok()) {
      *linux->mutable_network() = *network;
    }
  }
  for (const Container& c : containers) *linux->add_containers() = Measure(c, &pod);
  return stats;
}

absl::StatusOr<runtime::v1::PodSandboxStats> Stats::OfPod(const std::string& id) {
  Pod pod;
  std::vector<Container> containers;
  {
    std::lock_guard lock(state_.mutex);
    absl::StatusOr<std::string> resolved = state_.ResolvePodIdLocked(id);
    if (!resolved.ok()) return resolved.status();
    pod = state_.pods.at(*resolved);
    for (const auto& [cid, c] : state_.containers) {
      if (c.pod_id == pod.id && Measurable(c)) containers.push_back(c);
    }
  }
  return MeasurePod(pod, containers);
}

std::vector<runtime::v1::PodSandboxStats> Stats::OfPods(
    const runtime::v1::PodSandboxStatsFilter& filter) {
  std::vector<std::pair<Pod, std::vector<Container>>> chosen;
  {
    std::lock_guard lock(state_.mutex);
    for (const auto& [id, pod] : state_.pods) {
      if (!filter.id().empty() && !absl::StartsWith(id, filter.id())) continue;
      if (!LabelsMatch(pod.config.labels(), filter.label_selector())) continue;
      std::vector<Container> containers;
      for (const auto& [cid, c] : state_.containers) {
        if (c.pod_id == id && Measurable(c)) containers.push_back(c);
      }
      chosen.emplace_back(pod, std::move(containers));
    }
  }
  std::vector<runtime::v1::PodSandboxStats> all;
  for (const auto& [pod, containers] : chosen) all.push_back(MeasurePod(pod, containers));
  return all;
}

}  // namespace kapal::runtime
