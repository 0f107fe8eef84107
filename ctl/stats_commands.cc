#include "ctl/stats_commands.h"

#include <functional>
#include <map>
#include <optional>
#include <thread>

#include "absl/strings/str_format.h"
#include "ctl/image_commands.h"
#include "ctl/pod_commands.h"

namespace kapal::ctl {

namespace {

// CPU % of one core between two cumulative readings (what crictl shows).
std::string CpuPercent(const runtime::v1::CpuUsage& before, const runtime::v1::CpuUsage& after) {
  int64_t elapsed = after.timestamp() - before.timestamp();
  uint64_t used = after.usage_core_nano_seconds().value();
  uint64_t was = before.usage_core_nano_seconds().value();
  if (elapsed <= 0 || used < was) return "0.00";
  return absl::StrFormat("%.2f",
                         static_cast<double>(used - was) * 100.0 / static_cast<double>(elapsed));
}

// One list call, or (for a table) two INTERVAL apart, so that CPU % covers that interval as in
// crictl. JSON and YAML print the first answer as it is (and return no pair for a table).
template <typename Response>
absl::StatusOr<std::optional<std::pair<Response, Response>>> ListTwice(
    const std::function<grpc::Status(Response*)>& list, const char* rpc,
    const StatsCommand& command, std::ostream& out) {
  std::pair<Response, Response> answers;
  if (grpc::Status status = list(&answers.first); !status.ok()) return RpcError(rpc, status);
  if (command.format != OutputFormat::kTable) {
    PrintDocument(MessageToJson(answers.first), command.format, out);
    return std::nullopt;
  }
  std::this_thread::sleep_for(command.interval);
  if (grpc::Status status = list(&answers.second); !status.ok()) return RpcError(rpc, status);
  return answers;
}

template <typename Filter>
absl::Status SelectLabels(const std::vector<std::string>& labels, Filter* filter) {
  absl::StatusOr<std::map<std::string, std::string>> selector = ParseLabels(labels);
  if (!selector.ok()) return selector.status();
  for (const auto& [key, value] : *selector) (*filter->mutable_label_selector())[key] = value;
  return absl::OkStatus();
}

}  // namespace

absl::Status RunContainerStats(CriClient& client, const StatsCommand& command, std::ostream& out) {
  runtime::v1::ListContainerStatsRequest request;
  request.mutable_filter()->set_id(command.id);
  request.mutable_filter()->set_pod_sandbox_id(command.pod);
  if (absl::Status selected = SelectLabels(command.labels, request.mutable_filter());
      !selected.ok()) {
    return selected;
  }
  using Response = runtime::v1::ListContainerStatsResponse;
  absl::StatusOr<std::optional<std::pair<Response, Response>>> answers = ListTwice<Response>(
      [&](Response* response) {
        return client.Runtime().ListContainerStats(client.NewContext().get(), request, response);
      },
      "ListContainerStats", command, out);
  if (!answers.ok()) return answers.status();
  if (!answers->has_value()) return absl::OkStatus();  // printed as JSON or YAML
  std::map<std::string, runtime::v1::CpuUsage> before;
  for (const runtime::v1::ContainerStats& stats : (*answers)->first.stats()) {
    before[stats.attributes().id()] = stats.cpu();
  }
  Table table({"CONTAINER", "NAME", "CPU %", "MEM", "DISK", "INODES"});
  for (const runtime::v1::ContainerStats& stats : (*answers)->second.stats()) {
    auto earlier = before.find(stats.attributes().id());
    table.AddRow({ShortId(stats.attributes().id()), stats.attributes().metadata().name(),
                  earlier == before.end() ? "0.00" : CpuPercent(earlier->second, stats.cpu()),
                  HumanSize(static_cast<double>(stats.memory().working_set_bytes().value())),
                  HumanSize(static_cast<double>(stats.writable_layer().used_bytes().value())),
                  std::to_string(stats.writable_layer().inodes_used().value())});
  }
  table.Print(out);
  return absl::OkStatus();
}

absl::Status RunPodStats(CriClient& client, const StatsCommand& command, std::ostream& out) {
  runtime::v1::ListPodSandboxStatsRequest request;
  request.mutable_filter()->set_id(command.id);
  if (absl::Status selected = SelectLabels(command.labels, request.mutable_filter());
      !selected.ok()) {
    return selected;
  }
  using Response = runtime::v1::ListPodSandboxStatsResponse;
  absl::StatusOr<std::optional<std::pair<Response, Response>>> answers = ListTwice<Response>(
      [&](Response* response) {
        return client.Runtime().ListPodSandboxStats(client.NewContext().get(), request, response);
      },
      "ListPodSandboxStats", command, out);
  if (!answers.ok()) return answers.status();
  if (!answers->has_value()) return absl::OkStatus();  // printed as JSON or YAML
  std::map<std::string, runtime::v1::CpuUsage> before;
  for (const runtime::v1::PodSandboxStats& stats : (*answers)->first.stats()) {
    before[stats.attributes().id()] = stats.linux().cpu();
  }
  Table table({"POD", "POD ID", "CPU %", "MEM"});
  for (const runtime::v1::PodSandboxStats& stats : (*answers)->second.stats()) {
    auto earlier = before.find(stats.attributes().id());
    table.AddRow(
        {stats.attributes().metadata().name(), ShortId(stats.attributes().id()),
         earlier == before.end() ? "0.00" : CpuPercent(earlier->second, stats.linux().cpu()),
         HumanSize(static_cast<double>(stats.linux().memory().working_set_bytes().value()))});
  }
  table.Print(out);
  return absl::OkStatus();
}

absl::Status RunUpdate(CriClient& client, const UpdateCommand& command, std::ostream& out) {
  if (command.ids.empty()) return absl::InvalidArgumentError("update needs a container id");
  runtime::v1::LinuxContainerResources resources;
  resources.set_cpu_period(command.cpu_period);
  resources.set_cpu_quota(command.cpu_quota);
  resources.set_cpu_shares(command.cpu_shares);
  resources.set_cpuset_cpus(command.cpuset_cpus);
  resources.set_cpuset_mems(command.cpuset_mems);
  resources.set_memory_limit_in_bytes(command.memory);
  for (const std::string& id : command.ids) {
    runtime::v1::UpdateContainerResourcesRequest request;
    request.set_container_id(id);
    *request.mutable_linux() = resources;
    runtime::v1::UpdateContainerResourcesResponse response;
    grpc::Status status =
        client.Runtime().UpdateContainerResources(client.NewContext().get(), request, &response);
    if (!status.ok()) return RpcError("UpdateContainerResources", status);
    out << id << "\n";
  }
  return absl::OkStatus();
}

}  // namespace kapal::ctl
