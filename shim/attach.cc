#include "shim/attach.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "shim/exit_file.h"

namespace kapal::shim {

namespace {

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// Input is taken from clients while less than this waits for the container.
constexpr size_t kStdinBacklog = 64 * 1024;

}  // namespace

AttachHub::AttachHub(int listener, int container_stdin, bool stdin_once, bool terminal)
    : listener_(listener),
      container_stdin_(container_stdin),
      stdin_once_(stdin_once),
      terminal_(terminal) {
  if (listener_ >= 0) SetNonBlocking(listener_);
  if (container_stdin_ >= 0) SetNonBlocking(container_stdin_);
}

AttachHub::~AttachHub() {
  for (Client& client : clients_) ::close(client.fd);
  if (listener_ >= 0) ::close(listener_);
  // A terminal's master is also the container's output: main closes it.
  if (container_stdin_ >= 0 && !terminal_) ::close(container_stdin_);
}

void AttachHub::AddPollFds(std::vector<pollfd>& fds) const {
  if (listener_ >= 0) fds.push_back({listener_, POLLIN, 0});
  bool take_input = container_stdin_ >= 0 && stdin_pending_.size() < kStdinBacklog;
  if (container_stdin_ >= 0 && !stdin_pending_.empty()) {
    fds.push_back({container_stdin_, POLLOUT, 0});
  }
  for (const Client& client : clients_) {
    short events = 0;
    // Without a stdin, a client's input is read only to notice that it went away.
    if (client.input_open && (take_input || container_stdin_ < 0)) events |= POLLIN;
    if (!client.pending.empty()) events |= POLLOUT;
    fds.push_back({client.fd, events, 0});
  }
}

bool AttachHub::Handle(const pollfd& polled) {
  if (polled.revents == 0) return polled.fd == listener_;
  if (polled.fd == listener_) {
    Accept();
    return true;
  }
  if (polled.fd == container_stdin_ && container_stdin_ >= 0) {
    ssize_t n = ::write(container_stdin_, stdin_pending_.data(), stdin_pending_.size());
    if (n > 0) {
      stdin_pending_.erase(0, static_cast<size_t>(n));
    } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
      CloseStdin();  // the container closed its stdin
    }
    return true;
  }
  for (Client& client : clients_) {
    if (client.fd != polled.fd) continue;
    if (polled.revents & POLLIN) ReadInput(client);
    if (client.fd >= 0 && (polled.revents & (POLLHUP | POLLERR))) {
      // Gone for good (a client that only ended its input shows POLLIN with end of file, not
      // POLLHUP): its descriptor is closed at once, not at the next output.
      EndInput(client);
      ::close(client.fd);
      client.fd = -1;
    }
    if (client.fd >= 0 && (polled.revents & POLLOUT)) Flush(client);
    clients_.erase(
        std::remove_if(clients_.begin(), clients_.end(), [](const Client& c) { return c.fd < 0; }),
        clients_.end());
    return true;
  }
  return false;
}

void AttachHub::Accept() {
  for (;;) {
    int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;
    clients_.push_back({fd, "", true});
  }
}

void AttachHub::ReadInput(Client& client) {
  char buffer[16 * 1024];
  ssize_t n = ::read(client.fd, buffer, sizeof buffer);
  if (n > 0) {
    if (container_stdin_ >= 0) stdin_pending_.append(buffer, static_cast<size_t>(n));
    return;
  }
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n < 0) {  // gone
    EndInput(client);
    ::close(client.fd);
    client.fd = -1;
    return;
  }
  EndInput(client);  // end of input; the client may still read output
}

void AttachHub::EndInput(Client& client) {
  if (!client.input_open) return;
  client.input_open = false;
  if (stdin_once_) CloseStdin();
}

void AttachHub::CloseStdin() {
  if (container_stdin_ < 0) return;
  if (terminal_) {
    // A terminal cannot be half closed: end-of-file is ^D to the line discipline.
    stdin_pending_ += '\x04';
    ssize_t ignored = ::write(container_stdin_, stdin_pending_.data(), stdin_pending_.size());
    (void)ignored;
  } else {
    ::close(container_stdin_);
  }
  stdin_pending_.clear();
  container_stdin_ = -1;
}

void AttachHub::Flush(Client& client) {
  while (!client.pending.empty()) {
    ssize_t n = ::send(client.fd, client.pending.data(), client.pending.size(), MSG_NOSIGNAL);
    if (n > 0) {
      client.pending.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    EndInput(client);
    ::close(client.fd);
    client.fd = -1;
    return;
  }
}

void AttachHub::Broadcast(unsigned char stream, const char* data, size_t size) {
  if (clients_.empty()) return;
  std::string frame(kAttachFrameHeader, '\0');
  frame[0] = static_cast<char>(stream);
  for (int i = 0; i < 4; ++i) frame[1 + i] = static_cast<char>((size >> (8 * (3 - i))) & 0xff);
  frame.append(data, size);
  for (Client& client : clients_) {
    if (client.pending.size() + frame.size() > kAttachBacklog) {
      EndInput(client);  // too slow: dropped, the container goes on
      ::close(client.fd);
      client.fd = -1;
      continue;
    }
    client.pending += frame;
    Flush(client);
  }
  clients_.erase(
      std::remove_if(clients_.begin(), clients_.end(), [](const Client& c) { return c.fd < 0; }),
      clients_.end());
}

void AttachHub::CloseAll() {
  for (Client& client : clients_) {
    int flags = ::fcntl(client.fd, F_GETFL);
    ::fcntl(client.fd, F_SETFL, flags & ~O_NONBLOCK);
    timeval timeout{1, 0};
    ::setsockopt(client.fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    Flush(client);
    if (client.fd >= 0) ::close(client.fd);
  }
  clients_.clear();
  if (listener_ >= 0) ::close(listener_);
  listener_ = -1;
  ::unlink(kAttachSocket);
}

}  // namespace kapal::shim
