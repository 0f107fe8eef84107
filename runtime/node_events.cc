#include "runtime/node_events.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <set>

#include "absl/strings/str_cat.h"

namespace kapal::runtime {

struct NodeEvents::Queue {
  std::mutex mutex;
  std::condition_variable ready;
  std::deque<std::shared_ptr<const NodeEvent>> events;
  absl::Status ended = absl::OkStatus();  // why the subscription is over, once it is

  void End(absl::Status why) {
    {
      std::lock_guard lock(mutex);
      if (ended.ok()) ended = std::move(why);
    }
    ready.notify_all();
  }
};

struct NodeEvents::Hub {
  std::mutex mutex;
  std::set<std::shared_ptr<Queue>> queues;
  bool closed = false;
};

NodeEvents::NodeEvents(NodeState& state, metrics::Registry& registry, size_t queue_limit,
                       Journal* journal)
    : state_(state),
      queue_limit_(queue_limit),
      journal_(journal),
      dropped_(prometheus::BuildCounter()
                   .Name(metrics::Registry::Name("events_dropped_total"))
                   .Help("Event subscribers dropped because they fell too far behind")
                   .Register(registry.Prometheus())
                   .Add({})),
      hub_(std::make_shared<Hub>()) {}

NodeEvents::~NodeEvents() { Close(); }

std::unique_ptr<NodeEvents::Subscription> NodeEvents::Subscribe() {
  auto queue = std::make_shared<Queue>();
  std::lock_guard lock(hub_->mutex);
  if (hub_->closed) {
    queue->ended = absl::UnavailableError("kapald is stopping; no more events");
  } else {
    hub_->queues.insert(queue);
  }
  return std::unique_ptr<Subscription>(new Subscription(hub_, std::move(queue)));
}

void NodeEvents::JournalLocked(LifecycleChange change, const std::string& container_id,
                               const std::string& pod_id) {
  bool is_pod = container_id == pod_id;
  std::map<std::string, std::string>& attributes = attributes_[container_id];
  if (!is_pod) {
    if (auto c = state_.containers.find(container_id); c != state_.containers.end()) {
      const runtime::v1::ContainerConfig& config = c->second.config;
      for (const auto& [key, value] : config.labels()) attributes[key] = value;
      attributes["name"] = config.metadata().name();
      // The Docker door's containers carry their Docker name.
      if (auto docker = config.annotations().find("io.kapal.docker.name");
          docker != config.annotations().end()) {
        attributes["name"] = docker->second;
      }
      attributes["image"] = c->second.image_ref;
      attributes["io.kapal.pod"] = pod_id;
      if (change == LifecycleChange::kStopped) {
        attributes["exitCode"] = std::to_string(c->second.exit_code);
      }
    }
  } else if (auto pod = state_.pods.find(pod_id); pod != state_.pods.end()) {
    attributes["name"] = pod->second.config.metadata().name();
    attributes["namespace"] = pod->second.config.metadata().namespace_();
  }
  static const char* kActions[] = {"create", "start", "die", "destroy"};
  JournalEvent event;
  event.type = is_pod ? "pod" : "container";
  event.action = kActions[static_cast<int>(change)];
  event.id = container_id;
  event.attributes = attributes;
  if (change != LifecycleChange::kStopped) event.attributes.erase("exitCode");
  if (change == LifecycleChange::kDeleted) attributes_.erase(container_id);
  journal_->Publish(std::move(event));
}

void NodeEvents::PublishLocked(LifecycleChange change, const std::string& container_id,
                               const std::string& pod_id) {
  if (journal_ != nullptr) JournalLocked(change, container_id, pod_id);
  std::lock_guard lock(hub_->mutex);
  if (hub_->queues.empty()) return;
  auto event = std::make_shared<NodeEvent>();
  event->change = change;
  event->container_id = container_id;
  event->pod_id = pod_id;
  event->at = NowNanos();
  if (auto pod = state_.pods.find(pod_id); pod != state_.pods.end()) event->pod = pod->second;
  for (const auto& [id, c] : state_.containers) {
    if (c.pod_id == pod_id) event->containers.push_back(c);
  }
  SortNewestFirst(event->containers);
  std::shared_ptr<const NodeEvent> shared = std::move(event);
  for (auto it = hub_->queues.begin(); it != hub_->queues.end();) {
    Queue& queue = **it;
    bool overflowed = false;
    {
      std::lock_guard queue_lock(queue.mutex);
      if (queue.events.size() >= queue_limit_) {
        overflowed = true;
      } else {
        queue.events.push_back(shared);
      }
    }
    if (overflowed) {
      queue.End(absl::ResourceExhaustedError(
          absl::StrCat("this events subscriber fell more than ", queue_limit_,
                       " events behind and was dropped; subscribe again and list to catch up")));
      dropped_.Increment();
      it = hub_->queues.erase(it);
    } else {
      queue.ready.notify_one();
      ++it;
    }
  }
}

void NodeEvents::Close() {
  std::lock_guard lock(hub_->mutex);
  hub_->closed = true;
  for (const std::shared_ptr<Queue>& queue : hub_->queues) {
    queue->End(absl::UnavailableError("kapald is stopping; no more events"));
  }
  hub_->queues.clear();
}

NodeEvents::Subscription::~Subscription() {
  std::lock_guard lock(hub_->mutex);
  hub_->queues.erase(queue_);
}

absl::StatusOr<std::shared_ptr<const NodeEvent>> NodeEvents::Subscription::Next(
    std::chrono::milliseconds timeout) {
  std::unique_lock lock(queue_->mutex);
  queue_->ready.wait_for(lock, timeout,
                         [&] { return !queue_->events.empty() || !queue_->ended.ok(); });
  // Events queued before the end are still delivered; the end comes after them.
  if (!queue_->events.empty()) {
    std::shared_ptr<const NodeEvent> event = std::move(queue_->events.front());
    queue_->events.pop_front();
    return event;
  }
  if (!queue_->ended.ok()) return queue_->ended;
  return nullptr;
}

const char* LifecycleChangeName(LifecycleChange change) {
  switch (change) {
    case LifecycleChange::kCreated:
      return "CONTAINER_CREATED_EVENT";
    case LifecycleChange::kStarted:
      return "CONTAINER_STARTED_EVENT";
    case LifecycleChange::kStopped:
      return "CONTAINER_STOPPED_EVENT";
    case LifecycleChange::kDeleted:
      return "CONTAINER_DELETED_EVENT";
  }
  return "UNKNOWN";
}

}  // namespace kapal::runtime
