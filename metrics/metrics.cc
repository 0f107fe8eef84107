#include "metrics/metrics.h"

#include <arpa/inet.h>

#include <exception>
#include <mutex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "prometheus/exposer.h"
#include "prometheus/gauge.h"
#include "prometheus/text_serializer.h"

namespace kapal::metrics {

// The collectables given to AddCollectable, as one that the exposer knows from its start.
class Registry::Added : public prometheus::Collectable {
 public:
  void Add(std::shared_ptr<prometheus::Collectable> collectable) {
    std::lock_guard lock(mutex_);
    collectables_.push_back(std::move(collectable));
  }
  std::vector<prometheus::MetricFamily> Collect() const override {
    std::lock_guard lock(mutex_);
    std::vector<prometheus::MetricFamily> families;
    for (const auto& collectable : collectables_) {
      std::vector<prometheus::MetricFamily> more = collectable->Collect();
      families.insert(families.end(), more.begin(), more.end());
    }
    return families;
  }

 private:
  mutable std::mutex mutex_;
  std::vector<std::shared_ptr<prometheus::Collectable>> collectables_;
};

Registry::Registry()
    : registry_(std::make_shared<prometheus::Registry>()), added_(std::make_shared<Added>()) {}

void Registry::AddCollectable(std::shared_ptr<prometheus::Collectable> collectable) {
  added_->Add(std::move(collectable));
}

// COLLECT until its handle goes.
class Registry::ScrapeHandle::Function : public prometheus::Collectable {
 public:
  explicit Function(std::function<std::vector<prometheus::MetricFamily>()> collect)
      : collect_(std::move(collect)) {}
  void Stop() {
    std::lock_guard lock(mutex_);
    collect_ = nullptr;
  }
  std::vector<prometheus::MetricFamily> Collect() const override {
    std::lock_guard lock(mutex_);  // a scrape under way ends before Stop returns
    if (!collect_) return {};
    return collect_();
  }

 private:
  mutable std::mutex mutex_;
  std::function<std::vector<prometheus::MetricFamily>()> collect_;
};

Registry::ScrapeHandle::~ScrapeHandle() { function_->Stop(); }

std::unique_ptr<Registry::ScrapeHandle> Registry::AddScrapeFunction(
    std::function<std::vector<prometheus::MetricFamily>()> collect) {
  auto function = std::make_shared<ScrapeHandle::Function>(std::move(collect));
  AddCollectable(function);
  return std::make_unique<ScrapeHandle>(std::move(function));
}

prometheus::MetricFamily GaugeFamily(absl::string_view name, absl::string_view help,
                                     absl::string_view label,
                                     const std::map<std::string, double>& values) {
  prometheus::MetricFamily family;
  family.name = Registry::Name(name);
  family.help = std::string(help);
  family.type = prometheus::MetricType::Gauge;
  for (const auto& [value_label, value] : values) {
    prometheus::ClientMetric metric;
    if (!label.empty()) metric.label.push_back({std::string(label), value_label});
    metric.gauge.value = value;
    family.metric.push_back(metric);
  }
  return family;
}

std::vector<std::shared_ptr<prometheus::Collectable>> Registry::Collectables() const {
  return {registry_, added_};
}

std::string Registry::Serialize() const {
  std::vector<prometheus::MetricFamily> families;
  for (const auto& collectable : Collectables()) {
    std::vector<prometheus::MetricFamily> more = collectable->Collect();
    families.insert(families.end(), more.begin(), more.end());
  }
  return prometheus::TextSerializer().Serialize(families);
}

void RegisterBuildInfo(Registry& registry, absl::string_view version, absl::string_view commit) {
  prometheus::BuildGauge()
      .Name(Registry::Name("build_info"))
      .Help("Build of the running kapal: always 1, the build is in the labels")
      .Register(registry.Prometheus())
      .Add({{"version", std::string(version)}, {"commit", std::string(commit)}})
      .Set(1);
}

RpcMetrics::RpcMetrics(Registry& registry)
    : requests_(prometheus::BuildCounter()
                    .Name(Registry::Name("grpc_requests_total"))
                    .Help("gRPC requests handled, by method and status code")
                    .Register(registry.Prometheus())),
      latency_(prometheus::BuildHistogram()
                   .Name(Registry::Name("grpc_request_duration_seconds"))
                   .Help("Time from receiving a gRPC request to sending its status, by method")
                   .Register(registry.Prometheus())) {}

void RpcMetrics::Observe(const std::string& method, const std::string& code, double seconds) {
  requests_.Add({{"method", method}, {"code", code}}).Increment();
  // Buckets from 1 ms (Version, Status) to 5 min (a large image pull).
  static const prometheus::Histogram::BucketBoundaries kBuckets = {
      0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
  latency_.Add({{"method", method}}, kBuckets).Observe(seconds);
}

bool IsLoopbackHost(absl::string_view host) {
  in_addr v4{};
  if (::inet_pton(AF_INET, std::string(host).c_str(), &v4) == 1) {
    return (ntohl(v4.s_addr) >> 24) == 127;
  }
  in6_addr v6{};
  return ::inet_pton(AF_INET6, std::string(host).c_str(), &v6) == 1 && IN6_IS_ADDR_LOOPBACK(&v6);
}

absl::StatusOr<HostPort> ParseHostPort(absl::string_view address) {
  HostPort result;
  absl::string_view port_text;
  if (!address.empty() && address.front() == '[') {
    size_t close = address.find(']');
    if (close == absl::string_view::npos || close + 1 >= address.size() ||
        address[close + 1] != ':') {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", address, "\" is not [IPv6]:PORT (example: [::1]:9754)"));
    }
    result.host = std::string(address.substr(1, close - 1));
    port_text = address.substr(close + 2);
    in6_addr v6{};
    if (inet_pton(AF_INET6, result.host.c_str(), &v6) != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", result.host, "\" is not an IPv6 address"));
    }
  } else {
    size_t colon = address.rfind(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "\"", address, "\" has no port (expected HOST:PORT, example 127.0.0.1:9754)"));
    }
    result.host = std::string(address.substr(0, colon));
    port_text = address.substr(colon + 1);
    in_addr v4{};
    if (result.host != "localhost" && inet_pton(AF_INET, result.host.c_str(), &v4) != 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "\"", result.host, "\" is not an IPv4 address or localhost (IPv6 goes in brackets)"));
    }
  }
  if (!absl::SimpleAtoi(port_text, &result.port) || result.port < 0 || result.port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("\"", port_text, "\" is not a port number (0 to 65535)"));
  }
  return result;
}

struct HttpExposer::Impl {
  std::unique_ptr<prometheus::Exposer> exposer;
};

HttpExposer::HttpExposer(std::unique_ptr<Impl> impl, std::string address)
    : impl_(std::move(impl)), address_(std::move(address)) {}

HttpExposer::~HttpExposer() = default;

absl::StatusOr<std::unique_ptr<HttpExposer>> HttpExposer::Start(const std::string& address,
                                                                Registry& registry) {
  absl::StatusOr<HostPort> host_port = ParseHostPort(address);
  if (!host_port.ok()) return host_port.status();
  auto impl = std::make_unique<Impl>();
  try {
    // One worker thread: scrapes are rare and small, and every thread costs the daemon memory.
    impl->exposer = std::make_unique<prometheus::Exposer>(address, 1);
  } catch (const std::exception& e) {
    return absl::UnavailableError(
        absl::StrCat("metrics: cannot listen on ", address, ": ", e.what()));
  }
  // The exposer holds weak pointers; the Registry keeps the collectables alive and must outlive
  // the exposer, which kapald's start-up order guarantees.
  for (const auto& collectable : registry.Collectables()) {
    impl->exposer->RegisterCollectable(collectable);
  }
  std::vector<int> ports = impl->exposer->GetListeningPorts();
  int port = ports.empty() ? host_port->port : ports.front();
  std::string host = host_port->host.find(':') != std::string::npos
                         ? absl::StrCat("[", host_port->host, "]")
                         : host_port->host;
  return std::unique_ptr<HttpExposer>(
      new HttpExposer(std::move(impl), absl::StrCat(host, ":", port)));
}

}  // namespace kapal::metrics
