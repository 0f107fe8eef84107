// Pod lifecycle benchmark against any CRI endpoint.
//
//   kapal-pod-bench --registry-port PORT --target NAME,ENDPOINT,DAEMON_PID,MARKER ...
//
// Pushes a busybox image (built from the host's /bin/busybox) to the registry on 127.0.0.1:PORT
// and pulls it on each target. Then, per target:
//   - ROUNDS rounds of runp -> create -> start -> stop -> rm -> stopp -> rmp of a `sleep`
//     container, alternating between the targets round by round: median and p95 of each step;
//   - CONCURRENT pods (runp + create + start) started at once: total time;
//   - resident memory (RSS) of the daemon idle and with those pods running, and of each shim:
//     processes whose command line contains "shim" and MARKER (a path only that runtime's
//     shims have in their arguments);
//   - CHURN_PODS pods, each created, started, stopped and removed, by CHURN_WORKERS parallel
//     workers (a node turning pods over): total time;
//   - with STATS_PODS pods running (one container each), STATS_ROUNDS calls of
//     ListContainerStats and of ListPodSandboxStats, as kubelet makes every 10 s: median, p95.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "api/cri_services.h"
#include "base/files.h"
#include "bench/busybox_image.h"

namespace {

using namespace runtime::v1;  // NOLINT
using Clock = std::chrono::steady_clock;

struct Target {
  std::string name;
  std::string endpoint;
  int daemon_pid = 0;
  std::string marker;
};

std::unique_ptr<grpc::ClientContext> Deadline(int seconds = 120) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return context;
}

double Ms(Clock::duration duration) {
  return std::chrono::duration<double, std::milli>(duration).count();
}

long RssKiB(int pid) {
  absl::StatusOr<std::string> status =
      kapal::base::ReadFile(absl::StrCat("/proc/", pid, "/status"));
  if (!status.ok()) return -1;
  size_t at = status->find("VmRSS:");
  return at == std::string::npos ? -1 : std::strtol(status->c_str() + at + 6, nullptr, 10);
}

std::vector<long> ShimRssKiB(const std::string& marker) {
  std::vector<long> rss;
  absl::StatusOr<std::vector<std::string>> entries = kapal::base::ListDirectory("/proc");
  if (!entries.ok()) return rss;
  for (const std::string& pid : *entries) {
    if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
    absl::StatusOr<std::string> cmdline = kapal::base::ReadFile("/proc/" + pid + "/cmdline");
    if (!cmdline.ok()) continue;
    std::string argv0 = cmdline->substr(0, cmdline->find('\0'));
    if (argv0.find("shim") == std::string::npos) continue;
    if (cmdline->find(marker) == std::string::npos) continue;
    rss.push_back(RssKiB(std::stoi(pid)));
  }
  return rss;
}

void Check(const grpc::Status& status, const std::string& what) {
  if (!status.ok()) {
    std::cerr << "pod-bench: " << what << ": " << status.error_message() << "\n";
    std::_Exit(1);  // other threads may be mid-call: no destructors
  }
}

PodSandboxConfig PodConfig(const std::string& name, const std::string& cgroup_parent) {
  PodSandboxConfig config;
  if (!cgroup_parent.empty()) config.mutable_linux()->set_cgroup_parent(cgroup_parent);
  config.mutable_metadata()->set_name(name);
  config.mutable_metadata()->set_namespace_("bench");
  config.mutable_metadata()->set_uid(name + "-uid");
  config.set_hostname(name);
  config.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_pid(
      CONTAINER);
  return config;
}

ContainerConfig SleepContainer(const std::string& image) {
  ContainerConfig config;
  config.mutable_metadata()->set_name("sleep");
  config.mutable_image()->set_image(image);
  config.add_command("/bin/sleep");
  config.add_command("1000");
  return config;
}

struct Steps {
  std::map<std::string, std::vector<double>> ms;
};

// runp + create + start; returns pod and container ids.
// CGROUP_PARENT as kubelet gives it (containerd measures pod stats only with one).
std::pair<std::string, std::string> StartPod(RuntimeService::Stub& stub, const std::string& name,
                                             const std::string& image, Steps* steps,
                                             const std::string& cgroup_parent = "") {
  auto time = [&](const char* step, auto fn) {
    auto started = Clock::now();
    fn();
    if (steps != nullptr) steps->ms[step].push_back(Ms(Clock::now() - started));
  };
  PodSandboxConfig pod_config = PodConfig(name, cgroup_parent);
  RunPodSandboxResponse pod;
  time("runp", [&] {
    RunPodSandboxRequest request;
    *request.mutable_config() = pod_config;
    Check(stub.RunPodSandbox(Deadline().get(), request, &pod), "RunPodSandbox");
  });
  CreateContainerResponse container;
  time("create", [&] {
    CreateContainerRequest request;
    request.set_pod_sandbox_id(pod.pod_sandbox_id());
    *request.mutable_config() = SleepContainer(image);
    *request.mutable_sandbox_config() = pod_config;
    Check(stub.CreateContainer(Deadline().get(), request, &container), "CreateContainer");
  });
  time("start", [&] {
    StartContainerRequest request;
    request.set_container_id(container.container_id());
    StartContainerResponse response;
    Check(stub.StartContainer(Deadline().get(), request, &response), "StartContainer");
  });
  return {pod.pod_sandbox_id(), container.container_id()};
}

void TearDownPod(RuntimeService::Stub& stub, const std::string& pod, const std::string& container,
                 Steps* steps) {
  auto time = [&](const char* step, auto fn) {
    auto started = Clock::now();
    fn();
    if (steps != nullptr) steps->ms[step].push_back(Ms(Clock::now() - started));
  };
  time("stop", [&] {
    StopContainerRequest request;
    request.set_container_id(container);
    request.set_timeout(0);
    StopContainerResponse response;
    Check(stub.StopContainer(Deadline().get(), request, &response), "StopContainer");
  });
  time("rm", [&] {
    RemoveContainerRequest request;
    request.set_container_id(container);
    RemoveContainerResponse response;
    Check(stub.RemoveContainer(Deadline().get(), request, &response), "RemoveContainer");
  });
  time("stopp", [&] {
    StopPodSandboxRequest request;
    request.set_pod_sandbox_id(pod);
    StopPodSandboxResponse response;
    Check(stub.StopPodSandbox(Deadline().get(), request, &response), "StopPodSandbox");
  });
  time("rmp", [&] {
    RemovePodSandboxRequest request;
    request.set_pod_sandbox_id(pod);
    RemovePodSandboxResponse response;
    Check(stub.RemovePodSandbox(Deadline().get(), request, &response), "RemovePodSandbox");
  });
}

double Percentile(std::vector<double> values, double fraction) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t index = static_cast<size_t>(fraction * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kapal pod lifecycle benchmark"};
  int registry_port = 0;
  int rounds = 20;
  int concurrent = 10;
  int stats_pods = 50;
  int stats_rounds = 20;
  int churn_pods = 50;
  int churn_workers = 5;
  std::vector<std::string> target_specs;
  app.add_option("--registry-port", registry_port, "Registry on 127.0.0.1")->required();
  app.add_option("--rounds", rounds, "Sequential lifecycle rounds per target");
  app.add_option("--concurrent", concurrent, "Pods started at once per target");
  app.add_option("--stats-pods", stats_pods, "Pods running while stats are listed (0: none)");
  app.add_option("--stats-rounds", stats_rounds, "Stats list calls per target");
  app.add_option("--churn-pods", churn_pods, "Pods turned over by the churn workers (0: none)");
  app.add_option("--churn-workers", churn_workers, "Parallel churn workers");
  app.add_option("--target", target_specs, "NAME,ENDPOINT,DAEMON_PID,SHIM_MARKER")->required();
  CLI11_PARSE(app, argc, argv);
  churn_pods = std::clamp(churn_pods, 0, 500);
  churn_workers = std::clamp(churn_workers, 1, 50);
  rounds = std::clamp(rounds, 1, 1000);
  concurrent = std::clamp(concurrent, 1, 100);
  stats_pods = std::clamp(stats_pods, 0, 200);
  stats_rounds = std::clamp(stats_rounds, 1, 1000);

  std::vector<Target> targets;
  for (const std::string& spec : target_specs) {
    std::vector<std::string> parts = absl::StrSplit(spec, ',');
    if (parts.size() != 4) {
      std::cerr << "pod-bench: --target wants NAME,ENDPOINT,DAEMON_PID,SHIM_MARKER\n";
      return 2;
    }
    targets.push_back({parts[0], parts[1], std::stoi(parts[2]), parts[3]});
  }

  absl::StatusOr<std::string> pushed = kapal::bench::PushBusyboxImage(registry_port);
  if (!pushed.ok()) {
    std::cerr << "pod-bench: " << pushed.status() << "\n";
    return 1;
  }
  std::string image_ref = *pushed;

  // Per target: its stubs, and what is measured. Rounds alternate between the targets, so
  // that both see the same background noise of the machine.
  struct Run {
    std::unique_ptr<RuntimeService::Stub> stub;
    long idle_rss = 0, busy_rss = 0, stats_rss = 0;  // stats_rss: with the stats pods running
    Steps steps;
    double concurrent_ms = 0;
    std::vector<long> shims;
    std::vector<double> container_stats_ms, pod_stats_ms;
    int stats_listed = 0;
    double churn_ms = 0;
  };
  std::vector<Run> runs(targets.size());
  for (size_t t = 0; t < targets.size(); ++t) {
    auto channel = grpc::CreateChannel(targets[t].endpoint, grpc::InsecureChannelCredentials());
    runs[t].stub = RuntimeService::NewStub(channel);
    auto images = ImageService::NewStub(channel);
    PullImageRequest pull;
    pull.mutable_image()->set_image(image_ref);
    PullImageResponse pulled;
    Check(images->PullImage(Deadline().get(), pull, &pulled), targets[t].name + " PullImage");
    // One warm-up round: first-use costs (CNI bridge creation, caches) are not per-pod costs.
    auto [warm_pod, warm_container] = StartPod(*runs[t].stub, "warmup", image_ref, nullptr);
    TearDownPod(*runs[t].stub, warm_pod, warm_container, nullptr);
    runs[t].idle_rss = RssKiB(targets[t].daemon_pid);
  }
  for (int round = 0; round < rounds; ++round) {
    for (Run& run : runs) {
      auto [pod, container] =
          StartPod(*run.stub, absl::StrCat("round-", round), image_ref, &run.steps);
      TearDownPod(*run.stub, pod, container, &run.steps);
    }
  }
  for (size_t t = 0; t < targets.size(); ++t) {
    Run& run = runs[t];
    std::vector<std::pair<std::string, std::string>> started(concurrent);
    auto concurrent_start = Clock::now();
    std::vector<std::thread> threads;
    for (int i = 0; i < concurrent; ++i) {
      threads.emplace_back([&, i] {
        started[i] = StartPod(*run.stub, absl::StrCat("concurrent-", i), image_ref, nullptr);
      });
    }
    for (std::thread& thread : threads) thread.join();
    run.concurrent_ms = Ms(Clock::now() - concurrent_start);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    run.busy_rss = RssKiB(targets[t].daemon_pid);
    run.shims = ShimRssKiB(targets[t].marker);
    for (const auto& [pod, container] : started) TearDownPod(*run.stub, pod, container, nullptr);
  }
  for (size_t t = 0; t < targets.size() && churn_pods > 0; ++t) {
    Run& run = runs[t];
    std::atomic<int> next{0};
    auto churn_start = Clock::now();
    std::vector<std::thread> workers;
    for (int w = 0; w < churn_workers; ++w) {
      workers.emplace_back([&] {
        for (int i = next++; i < churn_pods; i = next++) {
          auto [pod, container] =
              StartPod(*run.stub, absl::StrCat("churn-", i), image_ref, nullptr);
          TearDownPod(*run.stub, pod, container, nullptr);
        }
      });
    }
    for (std::thread& worker : workers) worker.join();
    run.churn_ms = Ms(Clock::now() - churn_start);
  }
  for (size_t t = 0; t < targets.size() && stats_pods > 0; ++t) {
    Run& run = runs[t];
    std::vector<std::pair<std::string, std::string>> started;
    for (int i = 0; i < stats_pods; ++i) {
      std::string name = absl::StrCat("stats-", i);
      started.push_back(
          StartPod(*run.stub, name, image_ref, nullptr, absl::StrCat("/kapal-bench/", name)));
    }
    run.stats_rss = RssKiB(targets[t].daemon_pid);
    for (int round = 0; round < stats_rounds; ++round) {
      auto begun = Clock::now();
      ListContainerStatsResponse containers;
      Check(run.stub->ListContainerStats(Deadline().get(), {}, &containers), "ListContainerStats");
      run.container_stats_ms.push_back(Ms(Clock::now() - begun));
      run.stats_listed = containers.stats_size();
      begun = Clock::now();
      ListPodSandboxStatsResponse pods;
      Check(run.stub->ListPodSandboxStats(Deadline().get(), {}, &pods), "ListPodSandboxStats");
      run.pod_stats_ms.push_back(Ms(Clock::now() - begun));
    }
    for (const auto& [pod, container] : started) TearDownPod(*run.stub, pod, container, nullptr);
  }

  for (size_t t = 0; t < targets.size(); ++t) {
    const Target& target = targets[t];
    Run& run = runs[t];
    std::vector<double> total;
    for (size_t i = 0; i < run.steps.ms["runp"].size(); ++i) {
      total.push_back(run.steps.ms["runp"][i] + run.steps.ms["create"][i] +
                      run.steps.ms["start"][i]);
    }
    std::cout << "== " << target.name << " (" << target.endpoint << ")\n";
    std::cout << absl::StrFormat("%-22s %10s %10s\n", "step (ms)", "median", "p95");
    for (const char* step : {"runp", "create", "start", "stop", "rm", "stopp", "rmp"}) {
      std::cout << absl::StrFormat("%-22s %10.1f %10.1f\n", step,
                                   Percentile(run.steps.ms[step], 0.5),
                                   Percentile(run.steps.ms[step], 0.95));
    }
    std::cout << absl::StrFormat("%-22s %10.1f %10.1f\n", "runp+create+start",
                                 Percentile(total, 0.5), Percentile(total, 0.95));
    std::cout << absl::StrFormat("%d pods at once: %.0f ms\n", concurrent, run.concurrent_ms);
    if (churn_pods > 0) {
      std::cout << absl::StrFormat(
          "churn: %d pods created, started, stopped and removed by %d workers: %.2f s\n",
          churn_pods, churn_workers, run.churn_ms / 1000.0);
    }
    long shim_sum = 0;
    for (long kib : run.shims) shim_sum += kib;
    double shim_mean =
        run.shims.empty() ? 0.0 : shim_sum / 1024.0 / static_cast<double>(run.shims.size());
    std::cout << absl::StrFormat(
        "daemon RSS: %.1f MiB idle, %.1f MiB with %d pods; shims: %zu, %.2f MiB RSS each "
        "(mean)\n",
        run.idle_rss / 1024.0, run.busy_rss / 1024.0, concurrent, run.shims.size(), shim_mean);
    if (stats_pods > 0) {
      std::cout << absl::StrFormat(
          "with %d pods: daemon RSS %.1f MiB; ListContainerStats (%d listed) median %.1f ms, "
          "p95 %.1f ms; ListPodSandboxStats median %.1f ms, p95 %.1f ms\n",
          stats_pods, run.stats_rss / 1024.0, run.stats_listed,
          Percentile(run.container_stats_ms, 0.5), Percentile(run.container_stats_ms, 0.95),
          Percentile(run.pod_stats_ms, 0.5), Percentile(run.pod_stats_ms, 0.95));
    }
    std::cout << "RESULT " << target.name << " " << Percentile(total, 0.5) << " "
              << run.concurrent_ms << " " << shim_mean << " "
              << Percentile(run.container_stats_ms, 0.5) << " " << Percentile(run.pod_stats_ms, 0.5)
              << " " << run.churn_ms << "\n";
  }
  return 0;
}
