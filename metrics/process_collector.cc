#include <dirent.h>
#include <unistd.h>

#include <memory>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "base/files.h"
#include "metrics/metrics.h"
#include "prometheus/collectable.h"
#include "prometheus/metric_family.h"

namespace kapal::metrics {

namespace {

// The process_* series that Prometheus client libraries export, read from /proc/self at scrape
// time (prometheus-cpp has no such collector), with the kapal_ prefix.
class ProcessCollector : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> families;
    absl::StatusOr<std::string> stat = base::ReadFile("/proc/self/stat");
    if (!stat.ok()) return families;
    // Fields after the command name, which is in parentheses and may itself contain spaces.
    size_t close = stat->rfind(')');
    if (close == std::string::npos) return families;
    std::vector<absl::string_view> fields =
        absl::StrSplit(absl::string_view(*stat).substr(close + 2), ' ', absl::SkipEmpty());
    // fields[0] is field 3 (state) of proc(5): utime=14, stime=15, starttime=22, vsize=23, rss=24.
    auto field = [&](size_t proc_index) -> double {
      double value = 0;
      size_t index = proc_index - 3;
      if (index < fields.size()) (void)absl::SimpleAtod(fields[index], &value);
      return value;
    };
    const double ticks = static_cast<double>(::sysconf(_SC_CLK_TCK));
    const double page = static_cast<double>(::sysconf(_SC_PAGESIZE));
    families.push_back(Counter("process_cpu_seconds_total", "User and system CPU time spent",
                               (field(14) + field(15)) / ticks));
    families.push_back(
        Gauge("process_resident_memory_bytes", "Resident memory size", field(24) * page));
    families.push_back(Gauge("process_virtual_memory_bytes", "Virtual memory size", field(23)));
    families.push_back(Gauge("process_start_time_seconds", "Start time since the Unix epoch",
                             BootTime() + field(22) / ticks));
    families.push_back(Gauge("process_open_fds", "Open file descriptors", OpenFds()));
    return families;
  }

 private:
  static prometheus::MetricFamily Family(const char* name, const char* help,
                                         prometheus::MetricType type) {
    prometheus::MetricFamily family;
    family.name = Registry::Name(name);
    family.help = help;
    family.type = type;
    family.metric.emplace_back();
    return family;
  }
  static prometheus::MetricFamily Counter(const char* name, const char* help, double value) {
    prometheus::MetricFamily family = Family(name, help, prometheus::MetricType::Counter);
    family.metric.back().counter.value = value;
    return family;
  }
  static prometheus::MetricFamily Gauge(const char* name, const char* help, double value) {
    prometheus::MetricFamily family = Family(name, help, prometheus::MetricType::Gauge);
    family.metric.back().gauge.value = value;
    return family;
  }
  static double BootTime() {
    absl::StatusOr<std::string> stat = base::ReadFile("/proc/stat");
    if (!stat.ok()) return 0;
    for (absl::string_view line : absl::StrSplit(*stat, '\n')) {
      if (line.substr(0, 6) == "btime ") {
        double value = 0;
        (void)absl::SimpleAtod(line.substr(6), &value);
        return value;
      }
    }
    return 0;
  }
  static double OpenFds() {
    DIR* dir = ::opendir("/proc/self/fd");
    if (dir == nullptr) return 0;
    double count = 0;
    while (dirent* entry = ::readdir(dir)) {
      if (entry->d_name[0] != '.') ++count;
    }
    ::closedir(dir);
    return count - 1;  // the directory stream itself
  }
};

}  // namespace

void RegisterProcessMetrics(Registry& registry) {
  registry.AddCollectable(std::make_shared<ProcessCollector>());
}

}  // namespace kapal::metrics
