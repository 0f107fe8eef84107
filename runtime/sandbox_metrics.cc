#include "runtime/sandbox_metrics.h"

#include <algorithm>

namespace kapal::runtime {

namespace {

using runtime::v1::MetricType;

// Which labels a metric has after the base ones.
enum class Extra { kNone, kDevice, kInterface };

struct Definition {
  const char* name;
  const char* help;
  MetricType type;
  Extra extra;
};

constexpr MetricType kCounter = runtime::v1::COUNTER;
constexpr MetricType kGauge = runtime::v1::GAUGE;

// cAdvisor's metrics that kapald can read, by cAdvisor's names and meanings.
const std::vector<Definition>& Definitions() {
  static const std::vector<Definition> definitions = {
      {"container_cpu_usage_seconds_total", "Cumulative cpu time consumed in seconds.", kCounter,
       Extra::kNone},
      {"container_cpu_user_seconds_total", "Cumulative user cpu time consumed in seconds.",
       kCounter, Extra::kNone},
      {"container_cpu_system_seconds_total", "Cumulative system cpu time consumed in seconds.",
       kCounter, Extra::kNone},
      {"container_cpu_cfs_periods_total", "Number of elapsed enforcement period intervals.",
       kCounter, Extra::kNone},
      {"container_cpu_cfs_throttled_periods_total", "Number of throttled period intervals.",
       kCounter, Extra::kNone},
      {"container_cpu_cfs_throttled_seconds_total",
       "Total time duration the container has been throttled.", kCounter, Extra::kNone},
      {"container_memory_usage_bytes",
       "Current memory usage in bytes, including all memory regardless of when it was accessed",
       kGauge, Extra::kNone},
      {"container_memory_working_set_bytes", "Current working set in bytes.", kGauge, Extra::kNone},
      {"container_memory_rss", "Size of RSS in bytes.", kGauge, Extra::kNone},
      {"container_memory_cache", "Number of bytes of page cache memory.", kGauge, Extra::kNone},
      {"container_memory_mapped_file", "Size of memory mapped files in bytes.", kGauge,
       Extra::kNone},
      {"container_memory_swap", "Container swap usage in bytes.", kGauge, Extra::kNone},
      {"container_memory_failcnt", "Number of memory usage hits limits", kCounter, Extra::kNone},
      {"container_memory_max_usage_bytes", "Maximum memory usage recorded in bytes", kGauge,
       Extra::kNone},
      {"container_oom_events_total", "Count of out of memory events observed for the container",
       kCounter, Extra::kNone},
      {"container_threads", "Number of threads running inside the container", kGauge, Extra::kNone},
      {"container_threads_max",
       "Maximum number of threads allowed inside the container, infinity if value is zero", kGauge,
       Extra::kNone},
      {"container_spec_memory_limit_bytes", "Memory limit for the container.", kGauge,
       Extra::kNone},
      {"container_spec_cpu_period", "CPU period of the container.", kGauge, Extra::kNone},
      {"container_spec_cpu_quota", "CPU quota of the container.", kGauge, Extra::kNone},
      {"container_spec_cpu_shares", "CPU share of the container.", kGauge, Extra::kNone},
      {"container_start_time_seconds", "Start time of the container since unix epoch in seconds.",
       kGauge, Extra::kNone},
      {"container_last_seen", "Last time a container was seen by the exporter", kGauge,
       Extra::kNone},
      {"container_fs_usage_bytes",
       "Number of bytes that are consumed by the container on this filesystem.", kGauge,
       Extra::kDevice},
      {"container_network_receive_bytes_total", "Cumulative count of bytes received", kCounter,
       Extra::kInterface},
      {"container_network_receive_packets_total", "Cumulative count of packets received", kCounter,
       Extra::kInterface},
      {"container_network_receive_packets_dropped_total",
       "Cumulative count of packets dropped while receiving", kCounter, Extra::kInterface},
      {"container_network_receive_errors_total",
       "Cumulative count of errors encountered while receiving", kCounter, Extra::kInterface},
      {"container_network_transmit_bytes_total", "Cumulative count of bytes transmitted", kCounter,
       Extra::kInterface},
      {"container_network_transmit_packets_total", "Cumulative count of packets transmitted",
       kCounter, Extra::kInterface},
      {"container_network_transmit_packets_dropped_total",
       "Cumulative count of packets dropped while transmitting", kCounter, Extra::kInterface},
      {"container_network_transmit_errors_total",
       "Cumulative count of errors encountered while transmitting", kCounter, Extra::kInterface},
  };
  return definitions;
}

const std::vector<std::string>& BaseLabelKeys() {
  static const std::vector<std::string> keys = {"container", "id",        "image",
                                                "name",      "namespace", "pod"};
  return keys;
}

const Definition* Find(const std::string& name) {
  for (const Definition& definition : Definitions()) {
    if (name == definition.name) return &definition;
  }
  return nullptr;
}

// Appends metrics with one set of base label values (one container, or the pod itself).
class MetricWriter {
 public:
  MetricWriter(google::protobuf::RepeatedPtrField<runtime::v1::Metric>* out,
               std::vector<std::string> base_labels)
      : out_(out), base_labels_(std::move(base_labels)) {}

  void Add(const char* name, std::optional<uint64_t> value, const std::string& extra_label = "") {
    if (!value.has_value()) return;  // not measured: left out rather than reported as 0
    const Definition* definition = Find(name);
    if (definition == nullptr) return;
    runtime::v1::Metric* metric = out_->Add();
    metric->set_name(name);
    metric->set_metric_type(definition->type);
    for (const std::string& label : base_labels_) metric->add_label_values(label);
    if (definition->extra != Extra::kNone) metric->add_label_values(extra_label);
    metric->mutable_value()->set_value(*value);
  }

 private:
  google::protobuf::RepeatedPtrField<runtime::v1::Metric>* out_;
  std::vector<std::string> base_labels_;
};

std::optional<uint64_t> Seconds(std::optional<uint64_t> nanos) {
  if (!nanos.has_value()) return std::nullopt;
  return *nanos / 1'000'000'000;
}

void AddCgroupMetrics(MetricWriter& writer, const CgroupSample& sample) {
  writer.Add("container_cpu_usage_seconds_total", Seconds(sample.cpu_usage_ns));
  writer.Add("container_cpu_user_seconds_total", Seconds(sample.cpu_user_ns));
  writer.Add("container_cpu_system_seconds_total", Seconds(sample.cpu_system_ns));
  writer.Add("container_cpu_cfs_periods_total", sample.cfs_periods);
  writer.Add("container_cpu_cfs_throttled_periods_total", sample.cfs_throttled_periods);
  writer.Add("container_cpu_cfs_throttled_seconds_total", Seconds(sample.cfs_throttled_ns));
  writer.Add("container_memory_usage_bytes", sample.memory_usage);
  writer.Add("container_memory_working_set_bytes", sample.memory_working_set);
  writer.Add("container_memory_rss", sample.memory_rss);
  writer.Add("container_memory_cache", sample.memory_cache);
  writer.Add("container_memory_mapped_file", sample.memory_mapped_file);
  writer.Add("container_memory_swap", sample.memory_swap);
  writer.Add("container_memory_failcnt", sample.memory_failcnt);
  writer.Add("container_memory_max_usage_bytes", sample.memory_max_usage);
  writer.Add("container_oom_events_total", sample.oom_kills);
  writer.Add("container_threads", sample.processes);
  // cAdvisor says 0 for "no limit".
  writer.Add("container_threads_max", sample.processes_limit.value_or(0));
  writer.Add("container_spec_memory_limit_bytes", sample.memory_limit.value_or(0));
}

}  // namespace

std::vector<runtime::v1::MetricDescriptor> SandboxMetricDescriptors() {
  std::vector<runtime::v1::MetricDescriptor> descriptors;
  for (const Definition& definition : Definitions()) {
    runtime::v1::MetricDescriptor& descriptor = descriptors.emplace_back();
    descriptor.set_name(definition.name);
    descriptor.set_help(definition.help);
    for (const std::string& key : BaseLabelKeys()) descriptor.add_label_keys(key);
    if (definition.extra == Extra::kDevice) descriptor.add_label_keys("device");
    if (definition.extra == Extra::kInterface) descriptor.add_label_keys("interface");
  }
  return descriptors;
}

runtime::v1::PodSandboxMetrics SandboxMetricsOf(const PodMeasurement& measured, int64_t now) {
  runtime::v1::PodSandboxMetrics metrics;
  metrics.set_pod_sandbox_id(measured.pod.id);
  const runtime::v1::PodSandboxMetadata& meta = measured.pod.config.metadata();
  uint64_t now_seconds = static_cast<uint64_t>(now / 1'000'000'000);

  // The pod itself: its cgroup (all its containers) and its network, labelled container="".
  MetricWriter pod(metrics.mutable_metrics(),
                   {"", measured.cgroup, "", measured.pod.id, meta.namespace_(), meta.name()});
  if (measured.sample.has_value()) AddCgroupMetrics(pod, *measured.sample);
  pod.Add("container_start_time_seconds",
          static_cast<uint64_t>(measured.pod.created_at / 1'000'000'000));
  pod.Add("container_last_seen", now_seconds);
  for (const InterfaceCounters& interface : measured.interfaces) {
    pod.Add("container_network_receive_bytes_total", interface.rx_bytes, interface.name);
    pod.Add("container_network_receive_packets_total", interface.rx_packets, interface.name);
    pod.Add("container_network_receive_packets_dropped_total", interface.rx_dropped,
            interface.name);
    pod.Add("container_network_receive_errors_total", interface.rx_errors, interface.name);
    pod.Add("container_network_transmit_bytes_total", interface.tx_bytes, interface.name);
    pod.Add("container_network_transmit_packets_total", interface.tx_packets, interface.name);
    pod.Add("container_network_transmit_packets_dropped_total", interface.tx_dropped,
            interface.name);
    pod.Add("container_network_transmit_errors_total", interface.tx_errors, interface.name);
  }

  for (const ContainerMeasurement& measured_container : measured.containers) {
    const Container& c = measured_container.container;
    runtime::v1::ContainerMetrics* container_metrics = metrics.add_container_metrics();
    container_metrics->set_container_id(c.id);
    MetricWriter writer(container_metrics->mutable_metrics(),
                        {c.config.metadata().name(), measured_container.cgroup, c.image_ref, c.id,
                         meta.namespace_(), meta.name()});
    if (measured_container.sample.has_value()) {
      AddCgroupMetrics(writer, *measured_container.sample);
    }
    const runtime::v1::LinuxContainerResources& asked = c.config.linux().resources();
    writer.Add("container_spec_cpu_period",
               static_cast<uint64_t>(
                   std::max<int64_t>(0, asked.cpu_period() > 0 ? asked.cpu_period() : 100000)));
    writer.Add("container_spec_cpu_quota",
               static_cast<uint64_t>(std::max<int64_t>(0, asked.cpu_quota())));
    writer.Add("container_spec_cpu_shares",
               static_cast<uint64_t>(
                   std::max<int64_t>(0, asked.cpu_shares() > 0 ? asked.cpu_shares() : 1024)));
    if (c.started_at > 0) {
      writer.Add("container_start_time_seconds",
                 static_cast<uint64_t>(c.started_at / 1'000'000'000));
    }
    writer.Add("container_last_seen", now_seconds);
    writer.Add("container_fs_usage_bytes", measured_container.writable_layer_bytes,
               measured_container.writable_layer_device);
  }
  return metrics;
}

}  // namespace kapal::runtime
