#include "runtime/journal.h"

#include <thread>

#include "gtest/gtest.h"

namespace kapal::runtime {
namespace {

JournalEvent Event(const std::string& action) {
  JournalEvent event;
  event.type = "container";
  event.action = action;
  event.id = "c1";
  return event;
}

TEST(JournalTest, KeepsTheNewestInOrderAndWakesAWaitingReader) {
  Journal journal(3);
  EXPECT_EQ(journal.LastSequence(), 0u);
  EXPECT_TRUE(journal.After(0, std::chrono::milliseconds(1)).empty());
  for (const char* action : {"create", "start", "die", "destroy"}) journal.Publish(Event(action));
  std::vector<JournalEvent> kept = journal.Recent();
  ASSERT_EQ(kept.size(), 3u);  // the oldest went
  EXPECT_EQ(kept.front().action, "start");
  EXPECT_EQ(kept.back().sequence, 4u);
  EXPECT_GT(kept.back().time_nanos, 0);
  EXPECT_EQ(journal.After(2, std::chrono::milliseconds(1)).size(), 2u);

  uint64_t cursor = journal.LastSequence();
  std::thread publisher([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    journal.Publish(Event("create"));
  });
  std::vector<JournalEvent> next = journal.After(cursor, std::chrono::seconds(10));
  publisher.join();
  ASSERT_EQ(next.size(), 1u);
  EXPECT_EQ(next[0].sequence, cursor + 1);
}

}  // namespace
}  // namespace kapal::runtime
