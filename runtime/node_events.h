#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "metrics/metrics.h"
#include "runtime/journal.h"
#include "runtime/node_state.h"
#include "runtime/records.h"

namespace kapal::runtime {

// What happened to a container or to a pod sandbox (a pod's own events carry its id as the
// container id, as containerd sends them for CRI's GetContainerEvents).
enum class LifecycleChange { kCreated, kStarted, kStopped, kDeleted };

// One change, with the pod as it was right after it: kubelet's evented PLEG takes the pod's
// whole status from the event (a removed pod has none, a removed container is not among the
// containers any more).
struct NodeEvent {
  LifecycleChange change = LifecycleChange::kCreated;
  std::string container_id;
  std::string pod_id;
  int64_t at = 0;  // ns since the epoch
  std::optional<Pod> pod;
  std::vector<Container> containers;  // the pod's, newest first (as kubelet reads them)
};

// The core's one stream of lifecycle events, which every door reads (CRI's GetContainerEvents).
// Each subscriber has its own bounded queue; one that falls behind by more than that is dropped
// (counted in kapal_events_dropped_total), so a slow reader never holds the runtime up.
class NodeEvents {
 public:
  class Subscription;

  // QUEUE_LIMIT: the events a subscriber may have unread before it is dropped.
  // JOURNAL (may be null) gets each change too, as `docker events` shows them.
  NodeEvents(NodeState& state, metrics::Registry& registry, size_t queue_limit = 4096,
             Journal* journal = nullptr);
  ~NodeEvents();  // ends every subscription
  NodeEvents(const NodeEvents&) = delete;
  NodeEvents& operator=(const NodeEvents&) = delete;

  std::unique_ptr<Subscription> Subscribe();

  // Sends a change to every subscriber; the pod and its containers are copied as they are now.
  // The caller holds the node state's mutex. Cheap when nobody listens.
  void PublishLocked(LifecycleChange change, const std::string& container_id,
                     const std::string& pod_id);

  // Ends every subscription (kapald stopping): their Next answers UNAVAILABLE, new ones too.
  void Close();

 private:
  struct Queue;
  // The subscribers; shared with the subscriptions, which may outlive this object.
  struct Hub;

  // The journal's entry for a change (names and labels remembered while the container exists).
  void JournalLocked(LifecycleChange change, const std::string& container_id,
                     const std::string& pod_id);

  NodeState& state_;
  size_t queue_limit_;
  Journal* journal_;
  std::map<std::string, std::map<std::string, std::string>> attributes_;  // by container id
  prometheus::Counter& dropped_;
  std::shared_ptr<Hub> hub_;
};

class NodeEvents::Subscription {
 public:
  ~Subscription();
  Subscription(const Subscription&) = delete;
  Subscription& operator=(const Subscription&) = delete;

  // The next event; nullptr when none came within TIMEOUT (so a caller can look whether its
  // client is still there). RESOURCE_EXHAUSTED once this subscriber fell too far behind,
  // UNAVAILABLE once the runtime stops: either way the subscription is over.
  absl::StatusOr<std::shared_ptr<const NodeEvent>> Next(std::chrono::milliseconds timeout);

 private:
  friend class NodeEvents;
  Subscription(std::shared_ptr<Hub> hub, std::shared_ptr<Queue> queue)
      : hub_(std::move(hub)), queue_(std::move(queue)) {}
  std::shared_ptr<Hub> hub_;
  std::shared_ptr<Queue> queue_;
};

// CRI's name of a change: CONTAINER_CREATED_EVENT, ... (for logs and tests).
const char* LifecycleChangeName(LifecycleChange change);

}  // namespace kapal::runtime
