#include "streaming/transport.h"

#include <poll.h>

#include <map>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace kapal::streaming {

namespace {

bool ChannelOfStreamType(const std::string& type, Channel& channel) {
  static const std::map<std::string, Channel> kTypes = {{"stdin", Channel::kStdin},
                                                        {"stdout", Channel::kStdout},
                                                        {"stderr", Channel::kStderr},
                                                        {"error", Channel::kError},
                                                        {"resize", Channel::kResize}};
  auto found = kTypes.find(type);
  if (found == kTypes.end()) return false;
  channel = found->second;
  return true;
}

class SpdyCommandTransport : public CommandTransport {
 public:
  SpdyCommandTransport(int fd, std::string protocol) : spdy_(fd), protocol_(std::move(protocol)) {}

  absl::Status WaitForStreams(const std::string& early, const std::set<Channel>& expected,
                              std::chrono::milliseconds timeout) {
    std::vector<SpdyEvent> events;
    if (absl::Status consumed = spdy_.Consume(early, events); !consumed.ok()) return consumed;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      for (SpdyEvent& event : events) Take(event);
      events.clear();
      bool complete = true;
      for (Channel channel : expected) complete = complete && streams_.count(channel) > 0;
      if (complete) return absl::OkStatus();
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        return absl::DeadlineExceededError("the client did not open the streams it asked for");
      }
      pollfd polled{spdy_.fd(), POLLIN, 0};
      if (::poll(&polled, 1, static_cast<int>(left.count())) <= 0) continue;
      if (absl::Status read = spdy_.ReadEvents(events); !read.ok()) return read;
    }
  }

  int fd() const override { return spdy_.fd(); }

  absl::Status Read(std::vector<ChannelEvent>& out) override {
    std::vector<SpdyEvent> events;
    absl::Status read = spdy_.ReadEvents(events);
    for (SpdyEvent& event : events) Take(event);
    out.insert(out.end(), std::make_move_iterator(queued_.begin()),
               std::make_move_iterator(queued_.end()));
    queued_.clear();
    if (gone_) return absl::UnavailableError("the client went away");
    return read;
  }

  bool Send(Channel channel, absl::string_view data) override {
    auto found = streams_.find(channel);
    return found == streams_.end() || spdy_.SendData(found->second, data);
  }

  bool End(Channel channel) override {
    auto found = streams_.find(channel);
    return found == streams_.end() || spdy_.SendData(found->second, "", /*fin=*/true);
  }

  bool StatusOnErrorChannel() const override {
    return protocol_ == "v4.channel.k8s.io" || protocol_ == "v5.channel.k8s.io";
  }

 private:
  void Take(SpdyEvent& event) {
    switch (event.kind) {
      case SpdyEvent::Kind::kStreamOpened: {
        Channel channel;
        auto type = event.headers.find("streamtype");
        if (type == event.headers.end() || !ChannelOfStreamType(type->second, channel)) {
          spdy_.Reset(event.stream, 1);  // PROTOCOL_ERROR: a stream of no known type
          return;
        }
        spdy_.Reply(event.stream);
        streams_[channel] = event.stream;
        channels_[event.stream] = channel;
        if (event.fin) queued_.push_back({channel, "", true});
        return;
      }
      case SpdyEvent::Kind::kData:
      case SpdyEvent::Kind::kStreamReset: {
        auto found = channels_.find(event.stream);
        if (found == channels_.end()) return;
        bool end = event.fin || event.kind == SpdyEvent::Kind::kStreamReset;
        queued_.push_back({found->second, std::move(event.data), end});
        return;
      }
      case SpdyEvent::Kind::kGoAway:
        gone_ = true;
        return;
    }
  }

  SpdyConnection spdy_;
  std::string protocol_;
  std::map<Channel, uint32_t> streams_;
  std::map<uint32_t, Channel> channels_;
  std::vector<ChannelEvent> queued_;
  bool gone_ = false;
};

class WebSocketCommandTransport : public CommandTransport {
 public:
  WebSocketCommandTransport(int fd, std::string protocol)
      : socket_(fd),
        protocol_(std::move(protocol)),
        base64_(absl::StrContains(protocol_, "base64")) {}

  absl::Status Consume(const std::string& early, std::vector<ChannelEvent>& out) {
    std::vector<WebSocketMessage> messages;
    absl::Status consumed = socket_.Consume(early, messages);
    Translate(messages, out);
    return consumed;
  }

  int fd() const override { return socket_.fd(); }

  absl::Status Read(std::vector<ChannelEvent>& out) override {
    out.insert(out.end(), std::make_move_iterator(early_.begin()),
               std::make_move_iterator(early_.end()));
    early_.clear();
    std::vector<WebSocketMessage> messages;
    absl::Status read = socket_.ReadMessages(messages);
    Translate(messages, out);
    if (closed_) return absl::UnavailableError("the client closed the WebSocket");
    return read;
  }

  bool Send(Channel channel, absl::string_view data) override {
    return socket_.SendOnChannel(static_cast<uint8_t>(channel), data, base64_);
  }

  bool End(Channel channel) override {
    // v5 can say that a channel is closed; earlier versions end with the connection.
    if (protocol_ != "v5.channel.k8s.io") return true;
    std::string message = {static_cast<char>(255), static_cast<char>(channel)};
    return socket_.Send(WebSocketOpcode::kBinary, message);
  }

  bool StatusOnErrorChannel() const override { return absl::StartsWith(protocol_, "v"); }

  std::vector<ChannelEvent> early_;

  ~WebSocketCommandTransport() override { socket_.Close(); }

 private:
  void Translate(std::vector<WebSocketMessage>& messages, std::vector<ChannelEvent>& out) {
    for (WebSocketMessage& message : messages) {
      if (message.opcode == WebSocketOpcode::kClose) {
        closed_ = true;
        continue;
      }
      uint8_t channel = 0;
      std::string data;
      if (!WebSocketConnection::ChannelMessage(message, base64_, channel, data)) continue;
      if (channel == 255 && !data.empty()) {  // v5: the client closed a channel
        out.push_back({static_cast<Channel>(static_cast<uint8_t>(data[0])), "", true});
        continue;
      }
      if (channel > static_cast<int>(Channel::kResize)) continue;
      // Each message on the resize channel is one whole JSON object.
      if (channel == static_cast<int>(Channel::kResize)) data += '\n';
      out.push_back({static_cast<Channel>(channel), std::move(data), false});
    }
  }

  WebSocketConnection socket_;
  std::string protocol_;
  bool base64_;
  bool closed_ = false;
};

}  // namespace

const std::vector<std::string>& SpdyCommandProtocols() {
  static const std::vector<std::string> protocols = {"v4.channel.k8s.io", "v3.channel.k8s.io",
                                                     "v2.channel.k8s.io", "channel.k8s.io"};
  return protocols;
}

const std::vector<std::string>& WebSocketCommandProtocols() {
  static const std::vector<std::string> protocols = {"v5.channel.k8s.io", "v4.channel.k8s.io",
                                                     "v4.base64.channel.k8s.io", "channel.k8s.io",
                                                     "base64.channel.k8s.io"};
  return protocols;
}

absl::StatusOr<std::unique_ptr<CommandTransport>> OpenSpdyCommandTransport(
    int fd, const std::string& early, std::string protocol, const std::set<Channel>& expected,
    std::chrono::milliseconds timeout) {
  auto transport = std::make_unique<SpdyCommandTransport>(fd, std::move(protocol));
  if (absl::Status ready = transport->WaitForStreams(early, expected, timeout); !ready.ok()) {
    return ready;
  }
  return transport;
}

std::unique_ptr<CommandTransport> OpenWebSocketCommandTransport(int fd, const std::string& early,
                                                                std::string protocol) {
  auto transport = std::make_unique<WebSocketCommandTransport>(fd, std::move(protocol));
  (void)transport->Consume(early, transport->early_);
  return transport;
}

}  // namespace kapal::streaming
