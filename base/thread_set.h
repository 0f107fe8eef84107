#pragma once

#include <atomic>
#include <functional>
#include <list>
#include <mutex>
#include <thread>

namespace kapal::base {

// Threads of a server, one per connection or task: finished ones are joined as new ones start
// (so their number stays what is running), and the set can wake every socket-bound one and
// wait for all. Joins them all when destroyed.
class ThreadSet {
 public:
  ThreadSet() = default;
  ThreadSet(const ThreadSet&) = delete;
  ThreadSet& operator=(const ThreadSet&) = delete;
  ~ThreadSet() { JoinAll(); }

  // Runs WORK on a thread of its own. SOCKET, when given, is what the thread serves: it becomes
  // the set's, is shut down by Stop and closed when WORK returns. False (WORK not run, SOCKET
  // closed) once Stop was called.
  bool Spawn(std::function<void()> work, int socket = -1);
  // No more threads start; the sockets of those running are shut down both ways, so that
  // threads blocked on their clients return.
  void Stop();
  void JoinAll();

 private:
  struct Entry {
    std::thread thread;
    std::atomic<bool> done{false};
    int socket = -1;
  };
  std::mutex mutex_;
  std::list<Entry> entries_;
  bool stopped_ = false;
};

}  // namespace kapal::base

#include <memory>

#include "absl/status/statusor.h"
#include "base/unique_fd.h"

namespace kapal::base {

// A listening socket's accept loop on a thread of its own, each connection served by SERVE on a
// thread of its own (a ThreadSet, which owns and closes the connection's descriptor). The
// servers of kapald (streaming, Docker API) share it.
class Acceptor {
 public:
  static absl::StatusOr<std::unique_ptr<Acceptor>> Start(UniqueFd listener,
                                                         std::function<void(int fd)> serve);
  // Stops accepting, shuts the connections' sockets down (their handlers see the client go)
  // and waits for them.
  ~Acceptor();

 private:
  Acceptor() = default;
  void Loop();

  UniqueFd listener_;
  UniqueFd wake_;  // eventfd that ends the loop
  std::function<void(int fd)> serve_;
  ThreadSet connections_;
  std::thread loop_;
};

}  // namespace kapal::base
