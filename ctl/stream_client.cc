#include "ctl/stream_client.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <iostream>
#include <list>
#include <optional>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/files.h"
#include "nlohmann/json.hpp"
#include "streaming/http.h"
#include "streaming/websocket.h"

namespace kapal::ctl {

namespace {

using streaming::WebSocketConnection;
using streaming::WebSocketMessage;
using streaming::WebSocketOpcode;

constexpr uint8_t kStdin = 0, kStdout = 1, kStderr = 2, kError = 3, kResize = 4, kClose = 255;

struct Url {
  bool tls = false;
  std::string host;
  std::string port;
  std::string path;
};

absl::StatusOr<Url> ParseUrl(const std::string& url) {
  Url parsed;
  std::string rest;
  if (absl::StartsWith(url, "http://")) {
    rest = url.substr(7);
  } else if (absl::StartsWith(url, "https://")) {
    rest = url.substr(8);
    parsed.tls = true;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("streaming URL \"", url, "\" is neither http:// nor https://"));
  }
  size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  parsed.path = slash == std::string::npos ? "/" : rest.substr(slash);
  size_t colon = authority.rfind(':');
  if (colon == std::string::npos) return absl::InvalidArgumentError("streaming URL has no port");
  parsed.host = authority.substr(0, colon);
  parsed.port = authority.substr(colon + 1);
  if (absl::StartsWith(parsed.host, "["))
    parsed.host = parsed.host.substr(1, parsed.host.size() - 2);
  return parsed;
}

absl::StatusOr<base::UniqueFd> Dial(const std::string& host, const std::string& port) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (int error = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &found); error != 0) {
    return absl::UnavailableError(absl::StrCat("resolve ", host, ": ", ::gai_strerror(error)));
  }
  base::UniqueFd socket;
  int last_error = 0;
  for (addrinfo* at = found; at != nullptr; at = at->ai_next) {
    socket.Reset(::socket(at->ai_family, at->ai_socktype | SOCK_CLOEXEC, at->ai_protocol));
    if (socket && ::connect(socket.Get(), at->ai_addr, at->ai_addrlen) == 0) break;
    last_error = errno;
    socket.Reset();
  }
  ::freeaddrinfo(found);
  if (!socket) {
    return absl::UnavailableError(absl::StrCat("connect to the streaming server ", host, ":", port,
                                               ": ", std::strerror(last_error)));
  }
  return socket;
}

// The local terminal in raw mode while the object lives (keys go to the remote one as typed).
class RawTerminal {
 public:
  explicit RawTerminal(int fd) : fd_(fd) {
    if (::tcgetattr(fd_, &saved_) != 0) return;
    termios raw = saved_;
    ::cfmakeraw(&raw);
    active_ = ::tcsetattr(fd_, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) ::tcsetattr(fd_, TCSANOW, &saved_);
  }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  int fd_;
  termios saved_{};
  bool active_ = false;
};

std::optional<std::string> TerminalSize() {
  winsize size{};
  for (int fd : {STDOUT_FILENO, STDIN_FILENO, STDERR_FILENO}) {
    if (::ioctl(fd, TIOCGWINSZ, &size) == 0 && size.ws_col > 0) {
      return nlohmann::json({{"Width", size.ws_col}, {"Height", size.ws_row}}).dump();
    }
  }
  return std::nullopt;
}

void WriteOut(int fd, const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

// The error channel's Kubernetes Status: 0 for Success, the code of NonZeroExitCode, an error
// with the message otherwise.
absl::StatusOr<int> ExitCodeOf(const std::string& status_text) {
  if (status_text.empty()) return 0;
  nlohmann::json status = nlohmann::json::parse(status_text, nullptr, false);
  if (!status.is_object()) return absl::UnknownError(status_text);  // v1-v3: plain text
  if (status.value("status", "") == "Success") return 0;
  if (status.value("reason", "") == "NonZeroExitCode" && status.contains("details")) {
    for (const nlohmann::json& cause : status["details"].value("causes", nlohmann::json::array())) {
      int code = 0;
      if (cause.value("reason", "") == "ExitCode" &&
          absl::SimpleAtoi(cause.value("message", ""), &code)) {
        return code;
      }
    }
  }
  return absl::UnavailableError(status.value("message", status_text));
}

}  // namespace

absl::StatusOr<StreamConnection> StreamConnection::Open(const std::string& url,
                                                        const std::vector<std::string>& protocols,
                                                        const std::string& query) {
  absl::StatusOr<Url> parsed = ParseUrl(url);
  if (!parsed.ok()) return parsed.status();
  absl::StatusOr<base::UniqueFd> socket = Dial(parsed->host, parsed->port);
  if (!socket.ok()) return socket.status();
  StreamConnection connection;
  connection.socket_ = std::move(*socket);
  if (parsed->tls) {
    absl::StatusOr<std::unique_ptr<streaming::TlsContext>> context =
        streaming::TlsContext::ForInsecureClient();
    if (!context.ok()) return context.status();
    absl::StatusOr<std::unique_ptr<streaming::TlsPump>> pump =
        streaming::TlsPump::Start(**context, connection.socket_.Get(), /*server=*/false);
    if (!pump.ok()) return pump.status();
    connection.tls_ = std::move(*pump);
  }
  int fd = connection.fd();
  unsigned char nonce[16];
  RAND_bytes(nonce, sizeof nonce);
  std::string key =
      absl::Base64Escape(absl::string_view(reinterpret_cast<const char*>(nonce), sizeof nonce));
  std::string path = parsed->path;
  if (!query.empty()) absl::StrAppend(&path, absl::StrContains(path, "?") ? "&" : "?", query);
  std::string request =
      absl::StrCat("GET ", path, " HTTP/1.1\r\nHost: ", parsed->host, ":", parsed->port,
                   "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                   "Sec-WebSocket-Key: ",
                   key, "\r\nSec-WebSocket-Protocol: ", absl::StrJoin(protocols, ", "), "\r\n\r\n");
  if (!streaming::WriteAll(fd, request)) {
    return absl::UnavailableError("the streaming server closed the connection");
  }
  std::string head;
  size_t end;
  char buffer[4096];
  while ((end = head.find("\r\n\r\n")) == std::string::npos) {
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::UnavailableError("the streaming server closed the connection");
    head.append(buffer, static_cast<size_t>(n));
    if (head.size() > 64 * 1024) return absl::UnavailableError("no HTTP answer from the server");
  }
  connection.buffer_ = head.substr(end + 4);
  head.resize(end);
  if (!absl::StartsWith(head, "HTTP/1.1 101")) {
    // A refusal: status line, then its text body (read what came).
    std::string body = connection.buffer_;
    ssize_t n;
    while ((n = ::read(fd, buffer, sizeof buffer)) > 0) body.append(buffer, n);
    std::string status = head.substr(0, head.find("\r\n"));
    return absl::FailedPreconditionError(absl::StrCat("streaming server: ", status.substr(9), ": ",
                                                      absl::StripAsciiWhitespace(body)));
  }
  for (absl::string_view line : absl::StrSplit(head, "\r\n")) {
    if (absl::StartsWithIgnoreCase(line, "sec-websocket-protocol:")) {
      connection.protocol_ = std::string(absl::StripAsciiWhitespace(line.substr(23)));
    }
  }
  return connection;
}

bool StreamConnection::Send(uint8_t channel, absl::string_view data) {
  std::string message(1, static_cast<char>(channel));
  message.append(data.data(), data.size());
  return streaming::WriteAll(
      fd(), WebSocketConnection::EncodeClientFrame(WebSocketOpcode::kBinary, message));
}

absl::Status StreamConnection::Receive(std::vector<std::pair<uint8_t, std::string>>& messages) {
  char chunk[64 * 1024];
  ssize_t n = ::read(fd(), chunk, sizeof chunk);
  if (n < 0 && errno == EINTR) return absl::OkStatus();
  bool closed = n <= 0;
  if (n > 0) buffer_.append(chunk, static_cast<size_t>(n));
  std::vector<WebSocketMessage> frames;
  if (absl::Status decoded = WebSocketConnection::DecodeServerFrames(buffer_, frames);
      !decoded.ok()) {
    return decoded;
  }
  for (WebSocketMessage& frame : frames) {
    if (frame.opcode == WebSocketOpcode::kClose) closed = true;
    if (frame.opcode != WebSocketOpcode::kBinary || frame.payload.empty()) continue;
    messages.emplace_back(static_cast<uint8_t>(frame.payload[0]), frame.payload.substr(1));
  }
  if (closed) return absl::UnavailableError("the streaming session ended");
  return absl::OkStatus();
}

absl::StatusOr<int> RunInteractive(const std::string& url, const InteractiveOptions& options) {
  absl::StatusOr<StreamConnection> connection =
      StreamConnection::Open(url, {"v5.channel.k8s.io", "v4.channel.k8s.io"});
  if (!connection.ok()) return connection.status();
  bool v5 = connection->protocol() == "v5.channel.k8s.io";
  std::optional<RawTerminal> raw;
  if (options.tty && ::isatty(STDIN_FILENO)) raw.emplace(STDIN_FILENO);
  // Window size changes arrive as SIGWINCH, read here from a signalfd.
  sigset_t winch;
  sigemptyset(&winch);
  sigaddset(&winch, SIGWINCH);
  ::sigprocmask(SIG_BLOCK, &winch, nullptr);
  base::UniqueFd resizes(::signalfd(-1, &winch, SFD_CLOEXEC | SFD_NONBLOCK));
  if (options.tty) {
    if (std::optional<std::string> size = TerminalSize()) connection->Send(kResize, *size);
  }
  bool input_open = options.stdin;
  std::string status_text;
  std::vector<std::pair<uint8_t, std::string>> messages;
  char buffer[32 * 1024];
  for (;;) {
    std::vector<pollfd> fds = {{connection->fd(), POLLIN, 0}, {resizes.Get(), POLLIN, 0}};
    if (input_open) fds.push_back({STDIN_FILENO, POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) break;
    if (fds[1].revents != 0) {
      signalfd_siginfo info;
      while (::read(resizes.Get(), &info, sizeof info) > 0) {
      }
      if (std::optional<std::string> size = TerminalSize()) connection->Send(kResize, *size);
    }
    if (input_open && fds[2].revents != 0) {
      ssize_t n = ::read(STDIN_FILENO, buffer, sizeof buffer);
      if (n > 0) {
        connection->Send(kStdin, absl::string_view(buffer, static_cast<size_t>(n)));
      } else if (n == 0 || errno != EINTR) {
        input_open = false;
        if (v5) connection->Send(kClose, std::string(1, static_cast<char>(kStdin)));
      }
    }
    if (fds[0].revents != 0) {
      messages.clear();
      absl::Status received = connection->Receive(messages);
      for (auto& [channel, data] : messages) {
        if (channel == kStdout) WriteOut(STDOUT_FILENO, data);
        if (channel == kStderr) WriteOut(STDERR_FILENO, data);
        if (channel == kError) status_text += data;
      }
      if (!received.ok()) break;
    }
  }
  raw.reset();
  return ExitCodeOf(status_text);
}

absl::Status RunPortForward(CriClient& client, const std::string& pod_id,
                            const std::vector<std::string>& ports, std::ostream& out,
                            int max_connections) {
  struct Listener {
    base::UniqueFd fd;
    int remote;
  };
  std::vector<Listener> listeners;
  for (const std::string& spec : ports) {
    std::vector<std::string> parts = absl::StrSplit(spec, ':');
    int local = 0, remote = 0;
    bool ok = parts.size() == 1 ? absl::SimpleAtoi(parts[0], &remote) && (local = remote) > 0
                                : parts.size() == 2 && absl::SimpleAtoi(parts[0], &local) &&
                                      absl::SimpleAtoi(parts[1], &remote);
    if (!ok || local < 0 || local > 65535 || remote <= 0 || remote > 65535) {
      return absl::InvalidArgumentError(
          absl::StrCat("port \"", spec, "\" is not [LOCAL_PORT:]REMOTE_PORT"));
    }
    base::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int yes = 1;
    ::setsockopt(fd.Get(), SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(local));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::bind(fd.Get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        ::listen(fd.Get(), 64) != 0) {
      return base::ErrnoStatus(errno, absl::StrCat("listen on 127.0.0.1:", local));
    }
    socklen_t length = sizeof address;
    ::getsockname(fd.Get(), reinterpret_cast<sockaddr*>(&address), &length);
    out << "Forwarding from 127.0.0.1:" << ntohs(address.sin_port) << " -> " << remote << "\n"
        << std::flush;
    listeners.push_back({std::move(fd), remote});
  }

  // One PortForward session per local connection: each URL serves one session.
  auto forward = [&client, pod_id](base::UniqueFd local, int remote) {
    runtime::v1::PortForwardRequest request;
    request.set_pod_sandbox_id(pod_id);
    request.add_port(remote);
    runtime::v1::PortForwardResponse response;
    grpc::Status status =
        client.Runtime().PortForward(client.NewContext().get(), request, &response);
    if (!status.ok()) {
      std::cerr << "kapalctl: " << RpcError("PortForward", status).message() << "\n";
      return;
    }
    absl::StatusOr<StreamConnection> connection = StreamConnection::Open(
        response.url(), {"portforward.k8s.io"}, absl::StrCat("port=", remote));
    if (!connection.ok()) {
      std::cerr << "kapalctl: " << connection.status().message() << "\n";
      return;
    }
    bool port_header_seen[2] = {false, false};  // each channel starts with the port number
    std::vector<std::pair<uint8_t, std::string>> messages;
    char buffer[64 * 1024];
    for (;;) {
      pollfd fds[2] = {{local.Get(), POLLIN, 0}, {connection->fd(), POLLIN, 0}};
      if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
      if (fds[0].revents != 0) {
        ssize_t n = ::read(local.Get(), buffer, sizeof buffer);
        if (n <= 0) return;  // the local client is done
        if (!connection->Send(0, absl::string_view(buffer, static_cast<size_t>(n)))) return;
      }
      if (fds[1].revents != 0) {
        messages.clear();
        absl::Status received = connection->Receive(messages);
        for (auto& [channel, data] : messages) {
          if (channel > 1) continue;
          if (!port_header_seen[channel]) {
            port_header_seen[channel] = true;
            data = data.size() > 2 ? data.substr(2) : "";
          }
          if (channel == 0 && !streaming::WriteAll(local.Get(), data)) return;
          if (channel == 1 && !data.empty()) {
            std::cerr << "kapalctl: port " << remote << ": " << data << "\n";
          }
        }
        if (!received.ok()) return;
      }
    }
  };

  std::list<std::thread> workers;
  std::atomic<int> finished{0};
  int accepted = 0;
  while (max_connections == 0 || accepted < max_connections) {
    std::vector<pollfd> fds;
    for (const Listener& listener : listeners) fds.push_back({listener.fd.Get(), POLLIN, 0});
    if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) break;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (fds[i].revents == 0) continue;
      base::UniqueFd local(::accept4(listeners[i].fd.Get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!local) continue;
      ++accepted;
      int remote = listeners[i].remote;
      workers.emplace_back([&, remote, fd = local.Release()] {
        forward(base::UniqueFd(fd), remote);
        ++finished;
      });
    }
  }
  for (std::thread& worker : workers) worker.join();
  return absl::OkStatus();
}

}  // namespace kapal::ctl
