#pragma once

#include <chrono>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "ctl/commands.h"
#include "ctl/output.h"

// Resource commands of kapalctl, as crictl has them: stats, statsp, update.
namespace kapal::ctl {

struct StatsCommand {
  std::string id;                   // id prefix, or "" for all
  std::string pod;                  // pod id prefix (stats only)
  std::vector<std::string> labels;  // KEY=VALUE
  OutputFormat format = OutputFormat::kTable;
  // Between the two samples the CPU % is computed from, as crictl does.
  std::chrono::milliseconds interval = std::chrono::seconds(1);
};
// `stats`: CONTAINER NAME CPU % MEM DISK INODES of created and running containers.
absl::Status RunContainerStats(CriClient& client, const StatsCommand& command, std::ostream& out);
// `statsp`: POD POD ID CPU % MEM of pods.
absl::Status RunPodStats(CriClient& client, const StatsCommand& command, std::ostream& out);

struct UpdateCommand {
  std::vector<std::string> ids;
  int64_t cpu_period = 0;
  int64_t cpu_quota = 0;
  int64_t cpu_shares = 0;
  std::string cpuset_cpus;
  std::string cpuset_mems;
  int64_t memory = 0;  // bytes
};
// `update`: the resources given, applied to each container; prints each id.
absl::Status RunUpdate(CriClient& client, const UpdateCommand& command, std::ostream& out);

}  // namespace kapal::ctl
