#include "runtime/node_events.h"

#include <thread>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kapal::runtime {
namespace {

using ::testing::HasSubstr;

class NodeEventsTest : public ::testing::Test {
 protected:
  NodeEventsTest() {
    Pod pod;
    pod.id = "pod1";
    pod.config.mutable_metadata()->set_name("web");
    pod.ready = true;
    state_.pods[pod.id] = pod;
    for (const char* id : {"c2", "c1"}) {
      Container c;
      c.id = id;
      c.pod_id = "pod1";
      c.created_at = id[1] - '0';
      state_.containers[c.id] = c;
    }
    Container other;
    other.id = "c3";
    other.pod_id = "pod2";
    state_.containers[other.id] = other;
  }

  void Publish(LifecycleChange change, const std::string& container_id) {
    std::lock_guard lock(state_.mutex);
    events_.PublishLocked(change, container_id, "pod1");
  }

  NodeState state_;
  metrics::Registry registry_;
  NodeEvents events_{state_, registry_, /*queue_limit=*/3};
};

TEST_F(NodeEventsTest, EverySubscriberGetsEachEventWithItsPodsStatus) {
  auto first = events_.Subscribe();
  auto second = events_.Subscribe();
  Publish(LifecycleChange::kStarted, "c1");
  for (auto* subscription : {first.get(), second.get()}) {
    auto event = subscription->Next(std::chrono::milliseconds(100));
    ASSERT_TRUE(event.ok()) << event.status();
    ASSERT_NE(*event, nullptr);
    EXPECT_EQ((*event)->change, LifecycleChange::kStarted);
    EXPECT_EQ((*event)->container_id, "c1");
    ASSERT_TRUE((*event)->pod.has_value());
    EXPECT_EQ((*event)->pod->config.metadata().name(), "web");
    // Only the pod's own containers, newest first.
    ASSERT_EQ((*event)->containers.size(), 2u);
    EXPECT_EQ((*event)->containers[0].id, "c2");
    EXPECT_EQ((*event)->containers[1].id, "c1");
    EXPECT_GT((*event)->at, 0);
  }
  auto none = first->Next(std::chrono::milliseconds(10));
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, nullptr);
}

TEST_F(NodeEventsTest, ASlowSubscriberIsDroppedAndTheOthersGoOn) {
  auto slow = events_.Subscribe();
  auto quick = events_.Subscribe();
  for (int i = 0; i < 5; ++i) {
    Publish(LifecycleChange::kCreated, "c1");
    auto event = quick->Next(std::chrono::milliseconds(100));
    ASSERT_TRUE(event.ok() && *event != nullptr);
  }
  // What was queued before the drop is still read, then the reason.
  for (int i = 0; i < 3; ++i) {
    auto event = slow->Next(std::chrono::milliseconds(100));
    ASSERT_TRUE(event.ok() && *event != nullptr) << i;
  }
  auto dropped = slow->Next(std::chrono::milliseconds(100));
  EXPECT_EQ(dropped.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(dropped.status().message(), HasSubstr("subscribe again"));
  EXPECT_THAT(registry_.Serialize(), HasSubstr("kapal_events_dropped_total 1"));
  // A new subscription works again.
  auto again = events_.Subscribe();
  Publish(LifecycleChange::kStopped, "c1");
  auto event = again->Next(std::chrono::milliseconds(100));
  ASSERT_TRUE(event.ok() && *event != nullptr);
  EXPECT_EQ((*event)->change, LifecycleChange::kStopped);
}

TEST_F(NodeEventsTest, CloseEndsAWaitingSubscriberAndRefusesNewOnes) {
  auto waiting = events_.Subscribe();
  std::thread closer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    events_.Close();
  });
  auto ended = waiting->Next(std::chrono::seconds(10));
  closer.join();
  EXPECT_EQ(ended.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(events_.Subscribe()->Next(std::chrono::milliseconds(1)).status().code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(NodeEventsTest, AnEventOfAPodGoneHasNoPod) {
  auto subscription = events_.Subscribe();
  {
    std::lock_guard lock(state_.mutex);
    events_.PublishLocked(LifecycleChange::kDeleted, "c9", "gone");
  }
  auto event = subscription->Next(std::chrono::milliseconds(100));
  ASSERT_TRUE(event.ok() && *event != nullptr);
  EXPECT_FALSE((*event)->pod.has_value());
  EXPECT_TRUE((*event)->containers.empty());
  EXPECT_STREQ(LifecycleChangeName((*event)->change), "CONTAINER_DELETED_EVENT");
}

}  // namespace
}  // namespace kapal::runtime
