#pragma once

// metrics: the Prometheus registry, its HTTP endpoint and the process and rpc metrics.
// Components register their own metrics here; it must not reach into any of them.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "prometheus/collectable.h"
#include "prometheus/counter.h"
#include "prometheus/family.h"
#include "prometheus/histogram.h"
#include "prometheus/metric_family.h"
#include "prometheus/registry.h"

namespace kapal::metrics {

// Every kapal metric name starts with this, so a scrape of a node tells kapal's series apart.
inline constexpr absl::string_view kPrefix = "kapal_";

// The metrics of one daemon. Components receive a Registry& and add their families to
// Prometheus() (names built with Name()); they never see how the metrics are served.
class Registry {
 public:
  Registry();
  prometheus::Registry& Prometheus() { return *registry_; }
  // For metrics computed at scrape time rather than counted as they happen; may be added after
  // the exposer started (the runtime's are).
  void AddCollectable(std::shared_ptr<prometheus::Collectable> collectable);
  // The same for a component that may go before the registry: COLLECT is called on every
  // scrape until the returned handle is destroyed (the component keeps it as a member, after
  // what COLLECT reads, so that it goes first).
  class ScrapeHandle;
  [[nodiscard]] std::unique_ptr<ScrapeHandle> AddScrapeFunction(
      std::function<std::vector<prometheus::MetricFamily>()> collect);
  // Everything registered, as the exposer sees it.
  std::vector<std::shared_ptr<prometheus::Collectable>> Collectables() const;
  // The Prometheus text format of every metric, as a scrape would return it.
  std::string Serialize() const;

  static std::string Name(absl::string_view suffix) { return absl::StrCat(kPrefix, suffix); }

 private:
  class Added;
  std::shared_ptr<prometheus::Registry> registry_;
  std::shared_ptr<Added> added_;  // what AddCollectable gave, collected as one
};

class Registry::ScrapeHandle {
 public:
  class Function;
  explicit ScrapeHandle(std::shared_ptr<Function> function) : function_(std::move(function)) {}
  ~ScrapeHandle();
  ScrapeHandle(const ScrapeHandle&) = delete;
  ScrapeHandle& operator=(const ScrapeHandle&) = delete;

 private:
  std::shared_ptr<Function> function_;
};

// A gauge family NAME (kPrefix added) with one series per entry of VALUES, labelled
// LABEL="key" (no label when LABEL is empty).
prometheus::MetricFamily GaugeFamily(absl::string_view name, absl::string_view help,
                                     absl::string_view label,
                                     const std::map<std::string, double>& values);

// kapal_build_info{version, commit} 1, and the kapal_process_* series of this process.
void RegisterBuildInfo(Registry& registry, absl::string_view version, absl::string_view commit);
void RegisterProcessMetrics(Registry& registry);

// Count and latency of every gRPC request, labelled with the full method name
// (/runtime.v1.RuntimeService/Version) and the gRPC status code name (OK, NOT_FOUND, ...).
class RpcMetrics {
 public:
  explicit RpcMetrics(Registry& registry);
  void Observe(const std::string& method, const std::string& code, double seconds);

 private:
  prometheus::Family<prometheus::Counter>& requests_;
  prometheus::Family<prometheus::Histogram>& latency_;
};

// Serves GET /metrics in the Prometheus text format on ADDRESS ("127.0.0.1:9754", "[::1]:0";
// port 0 picks a free one). Stops serving when destroyed.
class HttpExposer {
 public:
  static absl::StatusOr<std::unique_ptr<HttpExposer>> Start(const std::string& address,
                                                            Registry& registry);
  ~HttpExposer();
  // The address actually listened on, with the port the kernel chose for port 0.
  const std::string& Address() const { return address_; }

 private:
  struct Impl;
  HttpExposer(std::unique_ptr<Impl> impl, std::string address);
  std::unique_ptr<Impl> impl_;
  std::string address_;
};

// Splits "host:port" / "[v6]:port" and checks both parts; used to validate configuration before
// anything listens.
struct HostPort {
  std::string host;
  int port = 0;
};
absl::StatusOr<HostPort> ParseHostPort(absl::string_view address);
// Whether HOST (as ParseHostPort gives it) is a loopback address: 127.0.0.0/8 or ::1.
bool IsLoopbackHost(absl::string_view host);

}  // namespace kapal::metrics
