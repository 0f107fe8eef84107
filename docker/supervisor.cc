// Docker's restart policies and HEALTHCHECKs, driven by the core's lifecycle events: an exit is
// looked at once (restart or not, with Docker's back-off), a start begins the container's
// health checks, each run as an exec in the container on a thread of its own.

#include <algorithm>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "docker/api_impl.h"
#include "docker/translate.h"

namespace kapal::docker {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr milliseconds kFirstBackoff{100};
constexpr milliseconds kMaximumBackoff{60000};
constexpr auto kResetAfterRun = std::chrono::seconds(10);
constexpr size_t kHealthLogEntries = 5;
constexpr size_t kHealthOutputLimit = 4096;

std::string Annotation(const runtime::Container& c, const char* key) {
  auto found = c.config.annotations().find(key);
  return found == c.config.annotations().end() ? "" : found->second;
}

int RestartCountOf(const runtime::Container& c) {
  int count = 0;
  return absl::SimpleAtoi(Annotation(c, kRestartCountAnnotation), &count) ? count : 0;
}

bool StoppedByUser(const runtime::Container& c) {
  return Annotation(c, kStoppedByUserAnnotation) == "true";
}

milliseconds DurationField(const nlohmann::json& object, const char* key, milliseconds fallback) {
  auto found = object.find(key);
  if (found == object.end() || !found->is_number_integer() || found->get<int64_t>() <= 0) {
    return fallback;
  }
  return std::chrono::duration_cast<milliseconds>(std::chrono::nanoseconds(found->get<int64_t>()));
}

}  // namespace

RestartPolicy RestartPolicyOf(const nlohmann::json& create) {
  RestartPolicy policy;
  nlohmann::json host_config = create.value("HostConfig", nlohmann::json::object());
  if (!host_config.is_object()) return policy;
  nlohmann::json restart = host_config.value("RestartPolicy", nlohmann::json::object());
  if (!restart.is_object()) return policy;
  std::string name = restart.value("Name", "");
  if (name == "always") policy.kind = RestartPolicy::kAlways;
  if (name == "unless-stopped") policy.kind = RestartPolicy::kUnlessStopped;
  if (name == "on-failure") policy.kind = RestartPolicy::kOnFailure;
  policy.maximum_retries = restart.value("MaximumRetryCount", 0);
  return policy;
}

std::optional<HealthConfig> HealthConfigOf(const nlohmann::json& create,
                                           const nlohmann::json& image_config) {
  nlohmann::json own = create.value("Healthcheck", nlohmann::json::object());
  nlohmann::json inherited = image_config.value("Healthcheck", nlohmann::json::object());
  if (!own.is_object()) own = nlohmann::json::object();
  if (!inherited.is_object()) inherited = nlohmann::json::object();
  // The container's fields win; what it leaves out comes from the image, as in Docker.
  nlohmann::json test = own.value("Test", nlohmann::json::array());
  if (!test.is_array() || test.empty()) test = inherited.value("Test", nlohmann::json::array());
  if (!test.is_array() || test.empty() || !test[0].is_string()) return std::nullopt;
  std::string kind = test[0].get<std::string>();
  HealthConfig config;
  if (kind == "CMD-SHELL" && test.size() >= 2 && test[1].is_string()) {
    config.command = {"/bin/sh", "-c", test[1].get<std::string>()};
  } else if (kind == "CMD" && test.size() >= 2) {
    for (size_t i = 1; i < test.size(); ++i) {
      if (test[i].is_string()) config.command.push_back(test[i].get<std::string>());
    }
  } else {
    return std::nullopt;  // NONE, or nothing to run
  }
  for (const nlohmann::json* source : {&inherited, &own}) {
    config.interval = DurationField(*source, "Interval", config.interval);
    config.timeout = DurationField(*source, "Timeout", config.timeout);
    config.start_period = DurationField(*source, "StartPeriod", config.start_period);
    auto retries = source->find("Retries");
    if (retries != source->end() && retries->is_number_integer() && retries->get<int>() > 0) {
      config.retries = retries->get<int>();
    }
  }
  return config;
}

void Api::Impl::StartSupervisor() {
  // Before the first event: what happened while kapald was down.
  for (const DockerContainer& found : Containers()) {
    const runtime::Container& c = found.container;
    if (c.state == runtime::v1::CONTAINER_RUNNING) {
      WatchHealth(found);
      continue;
    }
    if (c.state != runtime::v1::CONTAINER_EXITED || c.started_at == 0) continue;
    RestartPolicy policy = RestartPolicyOf(found.create);
    bool restart = false;
    switch (policy.kind) {
      case RestartPolicy::kAlways:
        restart = true;
        break;
      case RestartPolicy::kUnlessStopped:
        restart = !StoppedByUser(c);
        break;
      case RestartPolicy::kOnFailure:
        restart = !StoppedByUser(c) && c.exit_code != 0 &&
                  (policy.maximum_retries == 0 || RestartCountOf(c) < policy.maximum_retries);
        break;
      case RestartPolicy::kNo:
        break;
    }
    if (restart) {
      logger.Info("docker: restarting ", found.name, " at start (restart policy)");
      // `always` comes back after a stop by hand too; from here on it is policy-run again.
      if (absl::Status cleared = runtime.AnnotateContainer(c.id, {{kStoppedByUserAnnotation, ""}});
          !cleared.ok()) {
        logger.Warn("docker: ", found.name, ": ", cleared.message());
        continue;
      }
      std::lock_guard guard(mutex);
      restart_plans[c.id].due = Clock::now();
    }
  }
  supervisor = std::thread([this] { Supervise(); });
}

void Api::Impl::Supervise() {
  std::unique_ptr<runtime::NodeEvents::Subscription> events = runtime.SubscribeEvents();
  while (!stopping) {
    absl::StatusOr<std::shared_ptr<const runtime::NodeEvent>> next =
        events->Next(milliseconds(100));
    if (!next.ok()) {
      if (stopping || absl::IsUnavailable(next.status())) return;
      // Fell behind: a fresh subscription; exits missed meanwhile are found by their state.
      events = runtime.SubscribeEvents();
      continue;
    }
    if (*next != nullptr) {
      const runtime::NodeEvent& event = **next;
      if (event.change == runtime::LifecycleChange::kDeleted) {
        std::lock_guard guard(mutex);
        restart_plans.erase(event.container_id);
        health.erase(event.container_id);
      } else if (event.change == runtime::LifecycleChange::kStarted ||
                 event.change == runtime::LifecycleChange::kStopped) {
        // Only full container ids: a pod's own events carry its id, which is no container's.
        for (const runtime::Container& c : event.containers) {
          if (c.id != event.container_id) continue;
          // Kubelet's and crictl's containers are not this door's: no list of every container
          // for their events.
          if (!c.config.annotations().contains(kNameAnnotation)) break;
          absl::StatusOr<DockerContainer> found = FindContainer(c.id);
          if (!found.ok() || found->container.id != c.id) break;
          if (event.change == runtime::LifecycleChange::kStarted) {
            WatchHealth(*found);
          } else {
            OnExited(*found);
          }
          break;
        }
      }
    }
    RunDueWork();
  }
}

void Api::Impl::OnExited(const DockerContainer& found) {
  const runtime::Container& c = found.container;
  {
    std::lock_guard guard(mutex);
    if (auto watched = health.find(c.id); watched != health.end()) watched->second.active = false;
  }
  if (c.state != runtime::v1::CONTAINER_EXITED) return;
  RestartPolicy policy = RestartPolicyOf(found.create);
  if (policy.kind == RestartPolicy::kNo || StoppedByUser(c)) return;
  if (found.create.value("HostConfig", nlohmann::json::object()).value("AutoRemove", false)) return;
  bool restart = policy.kind != RestartPolicy::kOnFailure ||
                 (c.exit_code != 0 &&
                  (policy.maximum_retries == 0 || RestartCountOf(c) < policy.maximum_retries));
  std::lock_guard guard(mutex);
  if (!restart) {
    restart_plans.erase(c.id);
    return;
  }
  RestartPlan& plan = restart_plans[c.id];
  if (std::chrono::nanoseconds(c.finished_at - c.started_at) >= kResetAfterRun) {
    plan.backoff = milliseconds(0);
  }
  plan.backoff =
      plan.backoff.count() == 0 ? kFirstBackoff : std::min(plan.backoff * 2, kMaximumBackoff);
  plan.due = Clock::now() + plan.backoff;
}

void Api::Impl::RunDueWork() {
  std::vector<std::string> restarts;
  std::vector<std::pair<std::string, HealthConfig>> checks;
  {
    std::lock_guard guard(mutex);
    Clock::time_point now = Clock::now();
    for (auto& [id, plan] : restart_plans) {
      if (plan.due.has_value() && *plan.due <= now) {
        plan.due.reset();
        restarts.push_back(id);
      }
    }
    for (auto& [id, state] : health) {
      if (state.active && !state.checking && state.next <= now) {
        state.checking = true;
        checks.emplace_back(id, state.config);
      }
    }
  }
  for (const std::string& id : restarts) RestartNow(id);
  for (const auto& [id, config] : checks) {
    if (!health_checks.Spawn([this, id = id, config = config] { CheckHealth(id, config); })) {
      return;  // stopping
    }
  }
}

void Api::Impl::RestartNow(const std::string& id) {
  absl::StatusOr<DockerContainer> found = FindContainer(id);
  if (!found.ok() || found->container.id != id) return;
  const runtime::Container& c = found->container;
  if (c.state == runtime::v1::CONTAINER_RUNNING || StoppedByUser(c)) return;
  int count = RestartCountOf(c) + 1;
  // Counted before it starts: a crash of kapald in between does not forget a restart.
  if (absl::Status counted =
          runtime.AnnotateContainer(id, {{kRestartCountAnnotation, std::to_string(count)}});
      !counted.ok()) {
    logger.Warn("docker: cannot count a restart of ", found->name, ": ", counted.message());
    return;
  }
  absl::Status started =
      c.state == runtime::v1::CONTAINER_EXITED ? runtime.RecreateContainer(id) : absl::OkStatus();
  if (started.ok()) started = runtime.StartContainer(id);
  if (started.ok()) {
    logger.Info("docker: ", found->name, " restarted by its restart policy (", count, ")");
    return;
  }
  logger.Warn("docker: restarting ", found->name, " failed: ", started.message());
  // Tried again after the next back-off, as Docker does for a start that fails.
  absl::StatusOr<DockerContainer> now = FindContainer(id);
  if (now.ok()) OnExited(*now);
}

absl::Status Api::Impl::MarkStoppedByUser(const std::string& id, bool by_user) {
  {
    std::lock_guard guard(mutex);
    if (by_user) {
      restart_plans.erase(id);
    } else if (auto plan = restart_plans.find(id); plan != restart_plans.end()) {
      plan->second.due.reset();
      plan->second.backoff = milliseconds(0);
    }
  }
  if (by_user) return runtime.AnnotateContainer(id, {{kStoppedByUserAnnotation, "true"}});
  // Started by hand: the count starts over, as `docker start` resets Docker's.
  return runtime.AnnotateContainer(id,
                                   {{kStoppedByUserAnnotation, ""}, {kRestartCountAnnotation, ""}});
}

bool Api::Impl::Restarting(const std::string& id) {
  std::lock_guard guard(mutex);
  auto plan = restart_plans.find(id);
  return plan != restart_plans.end() && plan->second.due.has_value();
}

void Api::Impl::WatchHealth(const DockerContainer& found) {
  absl::StatusOr<images::ImageRecord> image = runtime.images().Find(found.container.image_id);
  nlohmann::json image_config =
      image.ok() ? ImageConfigOf(image->config_json) : nlohmann::json::object();
  std::optional<HealthConfig> config = HealthConfigOf(found.create, image_config);
  std::lock_guard guard(mutex);
  if (!config.has_value()) {
    health.erase(found.container.id);
    return;
  }
  HealthState state;
  state.config = *config;
  state.started = Clock::now();
  state.next = state.started + config->interval;  // the first check after one interval
  health[found.container.id] = std::move(state);
}

void Api::Impl::CheckHealth(const std::string& id, const HealthConfig& config) {
  auto timeout_seconds =
      std::chrono::seconds(std::max<int64_t>(1, (config.timeout.count() + 999) / 1000));
  int64_t start = runtime::NowNanos();
  absl::StatusOr<runtime::ExecResult> result =
      runtime.ExecSync(id, config.command, timeout_seconds);
  int64_t end = runtime::NowNanos();
  int exit_code = -1;
  std::string output;
  if (result.ok()) {
    exit_code = result->exit_code;
    output = result->output + result->errors;
  } else if (absl::IsDeadlineExceeded(result.status())) {
    output = absl::StrCat("Health check exceeded timeout (", timeout_seconds.count(), "s)");
  } else {
    output = std::string(result.status().message());
  }
  if (output.size() > kHealthOutputLimit) output.resize(kHealthOutputLimit);
  std::string changed_to;
  {
    std::lock_guard guard(mutex);
    auto found = health.find(id);
    if (found == health.end()) return;
    HealthState& state = found->second;
    state.checking = false;
    Clock::time_point now = Clock::now();
    state.next = now + config.interval;
    if (!state.active) return;  // the container stopped meanwhile: its end is no health result
    std::string before = state.status;
    if (exit_code == 0) {
      state.failing_streak = 0;
      state.status = "healthy";
    } else if (now - state.started >= config.start_period || state.status == "healthy") {
      // Failures during the start period do not count (until it was healthy once).
      if (++state.failing_streak >= config.retries) state.status = "unhealthy";
    }
    state.log.push_back({{"Start", DockerTime(start)},
                         {"End", DockerTime(end)},
                         {"ExitCode", exit_code},
                         {"Output", output}});
    if (state.log.size() > kHealthLogEntries) state.log.erase(state.log.begin());
    if (state.status != before) changed_to = state.status;
  }
  if (!changed_to.empty()) {
    runtime.journal().Publish("container", "health_status: " + changed_to, id);
  }
}

std::optional<HealthState> Api::Impl::HealthOf(const std::string& id) {
  std::lock_guard guard(mutex);
  auto found = health.find(id);
  if (found == health.end()) return std::nullopt;
  return found->second;
}

}  // namespace kapal::docker
