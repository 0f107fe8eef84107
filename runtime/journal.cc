#include "runtime/journal.h"

#include "runtime/records.h"

namespace kapal::runtime {

void Journal::Publish(std::string type, std::string action, std::string id,
                      std::map<std::string, std::string> attributes) {
  JournalEvent event;
  event.type = std::move(type);
  event.action = std::move(action);
  event.id = std::move(id);
  event.attributes = std::move(attributes);
  Publish(std::move(event));
}

void Journal::Publish(JournalEvent event) {
  {
    std::lock_guard lock(mutex_);
    event.sequence = ++last_sequence_;
    if (event.time_nanos == 0) event.time_nanos = NowNanos();
    events_.push_back(std::move(event));
    while (events_.size() > keep_) events_.pop_front();
  }
  arrived_.notify_all();
}

std::vector<JournalEvent> Journal::After(uint64_t after, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  arrived_.wait_for(lock, timeout, [&] { return last_sequence_ > after; });
  std::vector<JournalEvent> out;
  for (const JournalEvent& event : events_) {
    if (event.sequence > after) out.push_back(event);
  }
  return out;
}

std::vector<JournalEvent> Journal::Recent() {
  std::lock_guard lock(mutex_);
  return {events_.begin(), events_.end()};
}

uint64_t Journal::LastSequence() {
  std::lock_guard lock(mutex_);
  return last_sequence_;
}

void Journal::WakeAll() { arrived_.notify_all(); }

}  // namespace kapal::runtime
