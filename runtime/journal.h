#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace kapal::runtime {

// One thing that happened on the node, as `docker events` shows it: a container created,
// started, died, destroyed; an image pulled, tagged, untagged, deleted, loaded, pushed; a
// volume or network created or removed.
struct JournalEvent {
  uint64_t sequence = 0;  // set by the journal, increasing
  std::string type;       // container, pod, image, volume, network
  std::string action;     // create, start, die, destroy, pull, tag, untag, delete, ...
  std::string id;         // the object's id (an image reference for pull and push)
  std::map<std::string, std::string> attributes;  // name, image, exitCode, labels, ...
  int64_t time_nanos = 0;                         // set by the journal when 0
};

// The node's recent events, for every door: the last KEEP of them, so a reader can ask for
// those since a time (docker events --since), and a wait for the next ones. Publishing never
// blocks on readers.
class Journal {
 public:
  explicit Journal(size_t keep = 2048) : keep_(keep) {}

  void Publish(JournalEvent event);
  // The same, from its parts.
  void Publish(std::string type, std::string action, std::string id,
               std::map<std::string, std::string> attributes = {});

  // The events with a sequence above AFTER, at most waiting TIMEOUT for the first one to come.
  std::vector<JournalEvent> After(uint64_t after, std::chrono::milliseconds timeout);
  // Everything kept, oldest first.
  std::vector<JournalEvent> Recent();
  // The sequence of the newest event (0 when none yet): where a reader of new events starts.
  uint64_t LastSequence();
  // Wakes the readers (kapald stopping).
  void WakeAll();

 private:
  size_t keep_;
  std::mutex mutex_;
  std::condition_variable arrived_;
  std::deque<JournalEvent> events_;
  uint64_t last_sequence_ = 0;
};

}  // namespace kapal::runtime
