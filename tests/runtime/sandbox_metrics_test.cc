#include "runtime/sandbox_metrics.h"

#include <map>

#include "gtest/gtest.h"

namespace kapal::runtime {
namespace {

PodMeasurement ExamplePod() {
  PodMeasurement measured;
  measured.pod.id = "pod1";
  measured.pod.config.mutable_metadata()->set_name("web");
  measured.pod.config.mutable_metadata()->set_namespace_("shop");
  measured.pod.created_at = 1'700'000'000'000'000'000;
  measured.cgroup = "/kapal/pod1";
  CgroupSample pod_sample;
  pod_sample.cpu_usage_ns = 2'500'000'000;
  pod_sample.memory_working_set = 4096;
  measured.sample = pod_sample;
  measured.interfaces.push_back({"eth0", 100, 2, 0, 1, 200, 3, 0, 0});
  ContainerMeasurement& c = measured.containers.emplace_back();
  c.container.id = "c1";
  c.container.pod_id = "pod1";
  c.container.config.mutable_metadata()->set_name("app");
  c.container.image_ref = "registry/app@sha256:abc";
  c.container.started_at = 1'700'000'001'000'000'000;
  c.container.config.mutable_linux()->mutable_resources()->set_cpu_quota(50000);
  c.cgroup = "/kapal/pod1/c1";
  CgroupSample sample;
  sample.cpu_usage_ns = 1'999'999'999;
  sample.memory_usage = 8192;
  sample.oom_kills = 1;
  c.sample = sample;
  c.writable_layer_bytes = 12;
  c.writable_layer_device = "/var/lib/kapal/snapshotter";
  return measured;
}

// Every metric sent has a descriptor with as many label keys as it has values: kubelet drops
// (and logs) any that does not.
TEST(SandboxMetricsTest, EveryMetricMatchesItsDescriptor) {
  std::map<std::string, runtime::v1::MetricDescriptor> descriptors;
  for (const auto& descriptor : SandboxMetricDescriptors()) {
    EXPECT_FALSE(descriptor.help().empty()) << descriptor.name();
    EXPECT_TRUE(descriptors.emplace(descriptor.name(), descriptor).second) << descriptor.name();
  }
  runtime::v1::PodSandboxMetrics metrics =
      SandboxMetricsOf(ExamplePod(), 1'700'000'100'000'000'000);
  std::vector<runtime::v1::Metric> all(metrics.metrics().begin(), metrics.metrics().end());
  ASSERT_EQ(metrics.container_metrics_size(), 1);
  all.insert(all.end(), metrics.container_metrics(0).metrics().begin(),
             metrics.container_metrics(0).metrics().end());
  for (const runtime::v1::Metric& metric : all) {
    auto found = descriptors.find(metric.name());
    ASSERT_NE(found, descriptors.end()) << metric.name();
    EXPECT_EQ(metric.label_values_size(), found->second.label_keys_size()) << metric.name();
  }
}

TEST(SandboxMetricsTest, ValuesAndLabelsFollowCadvisor) {
  runtime::v1::PodSandboxMetrics metrics =
      SandboxMetricsOf(ExamplePod(), 1'700'000'100'000'000'000);
  EXPECT_EQ(metrics.pod_sandbox_id(), "pod1");
  auto find = [](const auto& list, const std::string& name) -> const runtime::v1::Metric* {
    for (const runtime::v1::Metric& metric : list) {
      if (metric.name() == name) return &metric;
    }
    return nullptr;
  };
  // Pod level: container="" and the pod's cgroup as id; network by interface.
  const runtime::v1::Metric* pod_cpu = find(metrics.metrics(), "container_cpu_usage_seconds_total");
  ASSERT_NE(pod_cpu, nullptr);
  EXPECT_EQ(pod_cpu->value().value(), 2u);  // whole seconds
  EXPECT_EQ(pod_cpu->metric_type(), runtime::v1::COUNTER);
  EXPECT_EQ(pod_cpu->label_values(0), "");
  EXPECT_EQ(pod_cpu->label_values(1), "/kapal/pod1");
  EXPECT_EQ(pod_cpu->label_values(4), "shop");
  EXPECT_EQ(pod_cpu->label_values(5), "web");
  const runtime::v1::Metric* received =
      find(metrics.metrics(), "container_network_receive_packets_dropped_total");
  ASSERT_NE(received, nullptr);
  EXPECT_EQ(received->value().value(), 1u);
  EXPECT_EQ(received->label_values(6), "eth0");
  // Nothing measured, nothing sent: the pod has no memory usage figure.
  EXPECT_EQ(find(metrics.metrics(), "container_memory_usage_bytes"), nullptr);

  const auto& container = metrics.container_metrics(0);
  EXPECT_EQ(container.container_id(), "c1");
  const runtime::v1::Metric* oom = find(container.metrics(), "container_oom_events_total");
  ASSERT_NE(oom, nullptr);
  EXPECT_EQ(oom->value().value(), 1u);
  EXPECT_EQ(oom->label_values(0), "app");
  EXPECT_EQ(oom->label_values(2), "registry/app@sha256:abc");
  EXPECT_EQ(oom->label_values(3), "c1");
  EXPECT_EQ(find(container.metrics(), "container_cpu_usage_seconds_total")->value().value(), 1u);
  EXPECT_EQ(find(container.metrics(), "container_spec_cpu_quota")->value().value(), 50000u);
  EXPECT_EQ(find(container.metrics(), "container_spec_cpu_shares")->value().value(), 1024u);
  EXPECT_EQ(find(container.metrics(), "container_start_time_seconds")->value().value(),
            1'700'000'001u);
  const runtime::v1::Metric* fs = find(container.metrics(), "container_fs_usage_bytes");
  ASSERT_NE(fs, nullptr);
  EXPECT_EQ(fs->value().value(), 12u);
  EXPECT_EQ(fs->label_values(6), "/var/lib/kapal/snapshotter");
}

}  // namespace
}  // namespace kapal::runtime
