#include "streaming/port_forward.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <map>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "streaming/http.h"
#include "streaming/spdy.h"
#include "streaming/websocket.h"

namespace kapal::streaming {

namespace {

// Data from the client waits here while the pod's side does not take it; past this the client
// is not read (TCP pushes back on it).
constexpr size_t kBacklog = 1024 * 1024;

// One forwarded connection: the TCP socket in the pod and what the client sent for it.
struct Forward {
  base::UniqueFd target;
  std::string pending;
  bool client_done = false;  // the client closed its side: shut the target's write side
  bool target_done = false;  // the target closed: no more reads
};

// Writes what is pending to the target; false when the target refuses more.
bool FlushTarget(Forward& forward) {
  while (!forward.pending.empty()) {
    ssize_t n =
        ::send(forward.target.Get(), forward.pending.data(), forward.pending.size(), MSG_NOSIGNAL);
    if (n > 0) {
      forward.pending.erase(0, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return true;
    forward.pending.clear();
    return false;
  }
  if (forward.client_done) ::shutdown(forward.target.Get(), SHUT_WR);
  return true;
}

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

}  // namespace

void RunSpdyPortForward(int fd, const std::string& early, const DialFunction& dial) {
  SpdyConnection spdy(fd);
  struct Request {
    uint32_t data_stream = 0;
    uint32_t error_stream = 0;
    uint16_t port = 0;
    Forward forward;
    bool started = false;
  };
  std::map<std::string, Request> requests;     // by requestid
  std::map<uint32_t, std::string> request_of;  // stream -> requestid
  std::vector<SpdyEvent> events;
  if (!spdy.Consume(early, events).ok()) return;
  auto end_request = [&](const std::string& id) {
    auto found = requests.find(id);
    if (found == requests.end()) return;
    request_of.erase(found->second.data_stream);
    request_of.erase(found->second.error_stream);
    requests.erase(found);
  };
  for (;;) {
    for (SpdyEvent& event : events) {
      if (event.kind == SpdyEvent::Kind::kGoAway) return;
      if (event.kind == SpdyEvent::Kind::kStreamOpened) {
        std::string type = event.headers["streamtype"];
        std::string id = event.headers["requestid"];
        int port = 0;
        if ((type != "data" && type != "error") ||
            !absl::SimpleAtoi(event.headers["port"], &port) || port <= 0 || port > 65535) {
          spdy.Reset(event.stream, 1);
          continue;
        }
        spdy.Reply(event.stream);
        Request& request = requests[id];
        (type == "data" ? request.data_stream : request.error_stream) = event.stream;
        request.port = static_cast<uint16_t>(port);
        request_of[event.stream] = id;
        if (request.data_stream != 0 && request.error_stream != 0 && !request.started) {
          request.started = true;
          absl::StatusOr<base::UniqueFd> target = dial(request.port);
          if (!target.ok()) {
            spdy.SendData(request.error_stream, target.status().message(), /*fin=*/true);
            spdy.SendData(request.data_stream, "", /*fin=*/true);
            end_request(id);
            continue;
          }
          SetNonBlocking(target->Get());
          request.forward.target = std::move(*target);
        }
        continue;
      }
      auto id = request_of.find(event.stream);
      if (id == request_of.end()) continue;
      Request& request = requests[id->second];
      if (event.kind == SpdyEvent::Kind::kStreamReset) {
        end_request(id->second);
        continue;
      }
      if (event.stream != request.data_stream) continue;  // the client writes nothing else
      request.forward.pending += event.data;
      if (event.fin) request.forward.client_done = true;
      if (request.forward.target && !FlushTarget(request.forward)) request.forward.pending.clear();
    }
    events.clear();

    std::vector<pollfd> fds;
    bool backlogged = false;
    for (auto& [id, request] : requests) {
      if (!request.forward.target) continue;
      short wanted = request.forward.target_done ? 0 : POLLIN;
      if (!request.forward.pending.empty()) wanted |= POLLOUT;
      backlogged = backlogged || request.forward.pending.size() > kBacklog;
      fds.push_back({request.forward.target.Get(), wanted, 0});
    }
    if (!backlogged) fds.push_back({fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) return;
    std::string data;
    for (const pollfd& polled : fds) {
      if (polled.revents == 0) continue;
      if (polled.fd == fd) {
        if (!spdy.ReadEvents(events).ok()) return;  // the client went away
        continue;
      }
      for (auto& [id, request] : requests) {
        if (request.forward.target.Get() != polled.fd) continue;
        if (polled.revents & POLLOUT) FlushTarget(request.forward);
        if (!request.forward.target_done && (polled.revents & (POLLIN | POLLHUP | POLLERR))) {
          if (ReadAvailable(polled.fd, data)) {
            if (!data.empty() && !spdy.SendData(request.data_stream, data)) return;
          } else {
            // The pod's side closed: the client's copy ends with FIN on data, its error reader
            // with FIN on error.
            request.forward.target_done = true;
            spdy.SendData(request.data_stream, "", /*fin=*/true);
            spdy.SendData(request.error_stream, "", /*fin=*/true);
          }
        }
        break;
      }
    }
    // Connections both sides are done with go.
    for (auto it = requests.begin(); it != requests.end();) {
      Forward& forward = it->second.forward;
      if (forward.target && forward.target_done && forward.client_done && forward.pending.empty()) {
        request_of.erase(it->second.data_stream);
        request_of.erase(it->second.error_stream);
        it = requests.erase(it);
      } else {
        ++it;
      }
    }
  }
}

void RunWebSocketPortForward(int fd, const std::string& early, bool base64,
                             const std::vector<uint16_t>& ports, const DialFunction& dial) {
  WebSocketConnection socket(fd);
  auto send = [&](size_t channel, absl::string_view data) {
    return socket.SendOnChannel(static_cast<uint8_t>(channel), data, base64);
  };
  std::vector<Forward> forwards(ports.size());
  for (size_t i = 0; i < ports.size(); ++i) {
    std::string port = {static_cast<char>(ports[i] & 0xff), static_cast<char>(ports[i] >> 8)};
    if (!send(2 * i, port) || !send(2 * i + 1, port)) return;
    absl::StatusOr<base::UniqueFd> target = dial(ports[i]);
    if (!target.ok()) {
      send(2 * i + 1, target.status().message());
      forwards[i].target_done = true;
      continue;
    }
    SetNonBlocking(target->Get());
    forwards[i].target = std::move(*target);
  }
  std::vector<WebSocketMessage> messages;
  if (!socket.Consume(early, messages).ok()) return;
  std::string data;
  for (;;) {
    for (WebSocketMessage& message : messages) {
      if (message.opcode == WebSocketOpcode::kClose) {
        socket.Close();
        return;
      }
      uint8_t channel = 0;
      std::string bytes;
      if (!WebSocketConnection::ChannelMessage(message, base64, channel, bytes)) continue;
      if (channel % 2 != 0 || channel / 2 >= forwards.size()) continue;
      Forward& forward = forwards[channel / 2];
      if (!forward.target) continue;
      forward.pending += bytes;
      FlushTarget(forward);
    }
    messages.clear();
    std::vector<pollfd> fds;
    bool backlogged = false;
    for (const Forward& forward : forwards) {
      if (!forward.target) continue;
      short wanted = forward.target_done ? 0 : POLLIN;
      if (!forward.pending.empty()) wanted |= POLLOUT;
      backlogged = backlogged || forward.pending.size() > kBacklog;
      fds.push_back({forward.target.Get(), wanted, 0});
    }
    if (!backlogged) fds.push_back({fd, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) return;
    for (const pollfd& polled : fds) {
      if (polled.revents == 0) continue;
      if (polled.fd == fd) {
        if (!socket.ReadMessages(messages).ok()) return;
        continue;
      }
      for (size_t i = 0; i < forwards.size(); ++i) {
        Forward& forward = forwards[i];
        if (forward.target.Get() != polled.fd) continue;
        if (polled.revents & POLLOUT) FlushTarget(forward);
        if (!forward.target_done && (polled.revents & (POLLIN | POLLHUP | POLLERR))) {
          if (ReadAvailable(polled.fd, data)) {
            if (!data.empty() && !send(2 * i, data)) return;
          } else {
            forward.target_done = true;
            forward.target.Reset();
          }
        }
        break;
      }
    }
    // WebSocket has no half close: when every port's connection has ended, so has the session.
    bool all_done = true;
    for (const Forward& forward : forwards) all_done = all_done && forward.target_done;
    if (all_done) {
      socket.Close();
      return;
    }
  }
}

}  // namespace kapal::streaming
