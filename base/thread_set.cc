#include "base/thread_set.h"

#include <sys/socket.h>
#include <unistd.h>

namespace kapal::base {

bool ThreadSet::Spawn(std::function<void()> work, int socket) {
  std::lock_guard lock(mutex_);
  if (stopped_) {
    if (socket >= 0) ::close(socket);
    return false;
  }
  for (auto it = entries_.begin(); it != entries_.end();) {
    if (it->done) {
      it->thread.join();
      it = entries_.erase(it);
    } else {
      ++it;
    }
  }
  Entry& entry = entries_.emplace_back();
  entry.socket = socket;
  entry.thread = std::thread([this, &entry, work = std::move(work)] {
    work();
    // Under the lock, so that Stop never shuts down a descriptor number reused meanwhile.
    std::lock_guard done_lock(mutex_);
    if (entry.socket >= 0) ::close(entry.socket);
    entry.done = true;
  });
  return true;
}

void ThreadSet::Stop() {
  std::lock_guard lock(mutex_);
  stopped_ = true;
  for (Entry& entry : entries_) {
    if (!entry.done && entry.socket >= 0) ::shutdown(entry.socket, SHUT_RDWR);
  }
}

void ThreadSet::JoinAll() {
  std::list<Entry> entries;
  {
    std::lock_guard lock(mutex_);
    entries.swap(entries_);
  }
  for (Entry& entry : entries) entry.thread.join();
}

}  // namespace kapal::base

#include <poll.h>
#include <sys/eventfd.h>

#include <cerrno>

#include "base/files.h"

namespace kapal::base {

absl::StatusOr<std::unique_ptr<Acceptor>> Acceptor::Start(UniqueFd listener,
                                                          std::function<void(int fd)> serve) {
  std::unique_ptr<Acceptor> acceptor(new Acceptor);
  acceptor->listener_ = std::move(listener);
  acceptor->serve_ = std::move(serve);
  acceptor->wake_.Reset(::eventfd(0, EFD_CLOEXEC));
  if (!acceptor->wake_) return ErrnoStatus(errno, "eventfd");
  Acceptor* raw = acceptor.get();
  acceptor->loop_ = std::thread([raw] { raw->Loop(); });
  return acceptor;
}

void Acceptor::Loop() {
  for (;;) {
    pollfd fds[2] = {{listener_.Get(), POLLIN, 0}, {wake_.Get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
    if (fds[1].revents != 0) return;
    if (fds[0].revents == 0) continue;
    int fd = ::accept4(listener_.Get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    if (!connections_.Spawn([this, fd] { serve_(fd); }, fd)) return;
  }
}

Acceptor::~Acceptor() {
  uint64_t one = 1;
  ssize_t ignored = ::write(wake_.Get(), &one, sizeof one);
  (void)ignored;
  loop_.join();
  connections_.Stop();
  connections_.JoinAll();
}

}  // namespace kapal::base
