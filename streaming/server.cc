#include "streaming/server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/rand.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>
#include <variant>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/files.h"
#include "base/thread_set.h"
#include "base/unique_fd.h"
#include "base/unix_socket.h"
#include "prometheus/counter.h"
#include "prometheus/gauge.h"
#include "streaming/http.h"
#include "streaming/port_forward.h"
#include "streaming/sessions.h"
#include "streaming/tls.h"
#include "streaming/transport.h"
#include "streaming/websocket.h"

namespace kapal::streaming {

namespace {

constexpr auto kTokenLifetime = std::chrono::minutes(1);
constexpr auto kRequestTimeout = std::chrono::seconds(15);
// The clients open their streams right after the upgrade; kubelet waits as long.
constexpr auto kStreamCreationTimeout = std::chrono::seconds(30);
// A client that reads nothing for this long is cut off.
constexpr int kSendTimeoutSeconds = 30;

using Session = std::variant<ExecSession, AttachSession, PortForwardSession>;

const char* KindName(const Session& session) {
  switch (session.index()) {
    case 0:
      return "exec";
    case 1:
      return "attach";
    default:
      return "portforward";
  }
}

// The first protocol the client offers that we speak (the client's order wins, as in
// Kubernetes' handshake); "" when none.
std::string Negotiate(const std::vector<std::string>& offered,
                      const std::vector<std::string>& supported) {
  for (const std::string& protocol : offered) {
    for (const std::string& ours : supported) {
      if (protocol == ours) return ours;
    }
  }
  return "";
}

}  // namespace

struct Server::Impl {
  ServerOptions options;
  runtime::Runtime& runtime;
  base::Logger& logger;
  std::string address;
  std::string url_host;
  base::UniqueFd listener;          // until the acceptor takes it
  std::unique_ptr<TlsContext> tls;  // null for plain HTTP
  std::unique_ptr<base::Acceptor> acceptor;

  std::mutex mutex;
  std::map<std::string, std::pair<Session, std::chrono::steady_clock::time_point>> tokens;

  prometheus::Family<prometheus::Gauge>& open_sessions;
  prometheus::Family<prometheus::Counter>& total_sessions;

  Impl(const ServerOptions& options_in, runtime::Runtime& runtime_in, metrics::Registry& metrics,
       base::Logger& logger_in)
      : options(options_in),
        runtime(runtime_in),
        logger(logger_in),
        open_sessions(prometheus::BuildGauge()
                          .Name(metrics::Registry::Name("streaming_sessions_open"))
                          .Help("Streaming sessions (exec, attach, portforward) now open")
                          .Register(metrics.Prometheus())),
        total_sessions(prometheus::BuildCounter()
                           .Name(metrics::Registry::Name("streaming_sessions_total"))
                           .Help("Streaming sessions started, by kind")
                           .Register(metrics.Prometheus())) {
    for (const char* kind : {"exec", "attach", "portforward"}) {
      open_sessions.Add({{"kind", kind}});
      total_sessions.Add({{"kind", kind}});
    }
  }

  std::string NewUrl(const char* kind, Session session) {
    unsigned char random[16];
    RAND_bytes(random, sizeof random);
    std::string token = absl::BytesToHexString(
        absl::string_view(reinterpret_cast<const char*>(random), sizeof random));
    auto now = std::chrono::steady_clock::now();
    std::lock_guard lock(mutex);
    for (auto it = tokens.begin(); it != tokens.end();) {
      it = it->second.second < now ? tokens.erase(it) : std::next(it);
    }
    tokens.emplace(token, std::make_pair(std::move(session), now + kTokenLifetime));
    return absl::StrCat(tls ? "https://" : "http://", url_host, "/", kind, "/", token);
  }

  std::optional<Session> Consume(const std::string& kind, const std::string& token) {
    std::lock_guard lock(mutex);
    auto found = tokens.find(token);
    if (found == tokens.end()) return std::nullopt;
    Session session = std::move(found->second.first);
    bool fresh = found->second.second >= std::chrono::steady_clock::now();
    tokens.erase(found);  // single use, also when the kind does not match
    if (!fresh || KindName(session) != kind) return std::nullopt;
    return session;
  }

  void ServeConnection(int fd) {
    if (tls) {
      ServeTls(fd);
    } else {
      Serve(fd);
    }
  }

  // The session runs on the plain end of a TLS pump; shutting FD down ends both.
  void ServeTls(int fd) {
    absl::StatusOr<std::unique_ptr<TlsPump>> pump = TlsPump::Accept(*tls, fd);
    if (!pump.ok()) {
      logger.Debug("streaming: ", pump.status().message());
      return;
    }
    Serve((*pump)->Plain());
    (*pump)->ClosePlain();
  }

  void Serve(int fd) {
    timeval send_timeout{kSendTimeoutSeconds, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
    std::string early;
    absl::StatusOr<HttpRequest> request = ReadRequest(
        fd, std::chrono::duration_cast<std::chrono::milliseconds>(kRequestTimeout), early);
    if (!request.ok()) {
      WriteError(fd, 400, "Bad Request", std::string(request.status().message()));
      return;
    }
    std::vector<std::string> parts = absl::StrSplit(request->path, '/', absl::SkipEmpty());
    if (parts.size() != 2 ||
        (parts[0] != "exec" && parts[0] != "attach" && parts[0] != "portforward")) {
      WriteError(fd, 404, "Not Found", "no such streaming endpoint: " + request->path);
      return;
    }
    std::optional<Session> session = Consume(parts[0], parts[1]);
    if (!session) {
      WriteError(fd, 404, "Not Found",
                 "unknown, used or expired streaming token (a URL from Exec, Attach or "
                 "PortForward serves one session within a minute)");
      return;
    }
    std::string upgrade = absl::AsciiStrToLower(request->Header("upgrade"));
    bool websocket = upgrade == "websocket";
    bool spdy = absl::StrContains(upgrade, "spdy/3.1");
    if (!websocket && !spdy) {
      WriteError(fd, 400, "Bad Request",
                 "streaming needs an HTTP upgrade to SPDY/3.1 or websocket (as crictl, kubelet "
                 "and kubectl do)");
      return;
    }
    bool forward = std::holds_alternative<PortForwardSession>(*session);
    std::string protocol;
    if (websocket) {
      static const std::vector<std::string> kForwardProtocols = {
          "portforward.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io", "channel.k8s.io",
          "base64.channel.k8s.io"};
      std::vector<std::string> offered = request->HeaderList("sec-websocket-protocol");
      protocol = Negotiate(offered, forward ? kForwardProtocols : WebSocketCommandProtocols());
      if (protocol.empty() && !offered.empty()) {
        WriteError(fd, 403, "Forbidden",
                   absl::StrCat("no common WebSocket protocol: the client offers ",
                                absl::StrJoin(offered, ", ")));
        return;
      }
      std::string response = absl::StrCat(
          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
          "Sec-WebSocket-Accept: ",
          WebSocketAccept(request->Header("sec-websocket-key")), "\r\n");
      if (!protocol.empty())
        absl::StrAppend(&response, "Sec-WebSocket-Protocol: ", protocol, "\r\n");
      if (!WriteAll(fd, response + "\r\n")) return;
      if (protocol.empty()) protocol = forward ? "portforward.k8s.io" : "channel.k8s.io";
    } else {
      std::vector<std::string> offered = request->HeaderList("x-stream-protocol-version");
      static const std::vector<std::string> kForwardProtocols = {"portforward.k8s.io"};
      protocol = Negotiate(offered, forward ? kForwardProtocols : SpdyCommandProtocols());
      if (protocol.empty() && !offered.empty()) {
        WriteError(fd, 403, "Forbidden",
                   absl::StrCat(
                       "no common streaming protocol: the client offers ",
                       absl::StrJoin(offered, ", "), "; kapal speaks ",
                       absl::StrJoin(forward ? kForwardProtocols : SpdyCommandProtocols(), ", ")));
        return;
      }
      if (protocol.empty()) protocol = forward ? "portforward.k8s.io" : "channel.k8s.io";
      if (!WriteAll(fd, absl::StrCat("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"
                                     "Upgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: ",
                                     protocol, "\r\n\r\n"))) {
        return;
      }
    }

    const char* kind = KindName(*session);
    open_sessions.Add({{"kind", kind}}).Increment();
    total_sessions.Add({{"kind", kind}}).Increment();
    if (auto* exec = std::get_if<ExecSession>(&*session)) {
      RunExec(fd, early, websocket, protocol, *exec);
    } else if (auto* attach = std::get_if<AttachSession>(&*session)) {
      RunAttach(fd, early, websocket, protocol, *attach);
    } else {
      RunPortForward(fd, early, websocket, protocol, *request,
                     std::get<PortForwardSession>(*session));
    }
    open_sessions.Add({{"kind", kind}}).Decrement();
    // An orderly end: the client reads all we sent before it sees the connection close.
    ::shutdown(fd, SHUT_WR);
    timeval linger{2, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &linger, sizeof linger);
    char sink[4096];
    while (::read(fd, sink, sizeof sink) > 0) {
    }
  }

  absl::StatusOr<std::unique_ptr<CommandTransport>> OpenTransport(int fd, const std::string& early,
                                                                  bool websocket,
                                                                  const std::string& protocol,
                                                                  bool in, bool out, bool err,
                                                                  bool tty) {
    if (websocket) return OpenWebSocketCommandTransport(fd, early, protocol);
    std::set<Channel> expected = {Channel::kError};
    if (in) expected.insert(Channel::kStdin);
    if (out) expected.insert(Channel::kStdout);
    if (err && !tty) expected.insert(Channel::kStderr);
    // Resize streams came with v3.
    if (tty && protocol != "channel.k8s.io" && protocol != "v2.channel.k8s.io") {
      expected.insert(Channel::kResize);
    }
    return OpenSpdyCommandTransport(
        fd, early, protocol, expected,
        std::chrono::duration_cast<std::chrono::milliseconds>(kStreamCreationTimeout));
  }

  void RunExec(int fd, const std::string& early, bool websocket, const std::string& protocol,
               const ExecSession& exec) {
    const runtime::ExecOptions& o = exec.options;
    absl::StatusOr<std::unique_ptr<CommandTransport>> transport =
        OpenTransport(fd, early, websocket, protocol, o.stdin, o.stdout, o.stderr, o.tty);
    if (!transport.ok()) {
      logger.Warn("exec in ", exec.container_id, ": ", transport.status().message());
      return;
    }
    absl::StatusOr<std::unique_ptr<runtime::ExecProcess>> process =
        runtime.StartExec(exec.container_id, o);
    if (!process.ok()) {
      FinishCommand(**transport, process.status(), -1, o.cmd);
      return;
    }
    RunExecSession(**transport, **process, o.cmd);
  }

  void RunAttach(int fd, const std::string& early, bool websocket, const std::string& protocol,
                 const AttachSession& attach) {
    absl::StatusOr<std::unique_ptr<CommandTransport>> transport = OpenTransport(
        fd, early, websocket, protocol, attach.stdin, attach.stdout, attach.stderr, attach.tty);
    if (!transport.ok()) {
      logger.Warn("attach to ", attach.container_id, ": ", transport.status().message());
      return;
    }
    absl::StatusOr<runtime::AttachedContainer> attached = runtime.Attach(attach.container_id);
    if (!attached.ok()) {
      FinishCommand(**transport, attached.status(), -1, {});
      return;
    }
    attached->stdin = attached->stdin && attach.stdin;
    std::string id = attached->id;
    RunAttachSession(**transport, *attached, [&](uint16_t columns, uint16_t rows) {
      (void)runtime.ResizeContainerTerminal(id, columns, rows);
    });
  }

  void RunPortForward(int fd, const std::string& early, bool websocket, const std::string& protocol,
                      const HttpRequest& request, const PortForwardSession& forward) {
    std::string pod = forward.pod_id;
    DialFunction dial = [this, pod](uint16_t port) { return runtime.DialPod(pod, port); };
    if (!websocket) {
      RunSpdyPortForward(fd, early, dial);
      return;
    }
    std::vector<uint16_t> ports;
    for (const std::string& value : request.QueryValues("port")) {
      for (absl::string_view part : absl::StrSplit(value, ',', absl::SkipEmpty())) {
        int port = 0;
        if (absl::SimpleAtoi(part, &port) && port > 0 && port <= 65535) {
          ports.push_back(static_cast<uint16_t>(port));
        }
      }
    }
    if (ports.empty()) ports = forward.ports;
    RunWebSocketPortForward(fd, early, absl::StrContains(protocol, "base64"), ports, dial);
  }
};

absl::StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options,
                                                      runtime::Runtime& runtime,
                                                      metrics::Registry& metrics,
                                                      base::Logger& logger) {
  absl::StatusOr<metrics::HostPort> where = metrics::ParseHostPort(options.address);
  if (!where.ok()) return where.status();
  auto impl = std::make_unique<Impl>(options, runtime, metrics, logger);
  if (options.tls) {
    absl::StatusOr<std::unique_ptr<TlsContext>> tls =
        TlsContext::ForServer(options.tls_cert_file, options.tls_key_file, where->host);
    if (!tls.ok()) return tls.status();
    impl->tls = std::move(*tls);
  }
  absl::StatusOr<base::TcpListener> listener =
      base::ListenTcp(where->host, where->port, "streaming server");
  if (!listener.ok()) return listener.status();
  impl->listener = std::move(listener->fd);
  int port = listener->port;
  bool v6 = where->host.find(':') != std::string::npos;
  std::string host = v6 ? absl::StrCat("[", where->host, "]") : where->host;
  impl->address = absl::StrCat(host, ":", port);
  std::string url_host = options.advertised_host.empty() ? host : options.advertised_host;
  impl->url_host = absl::StrCat(url_host, ":", port);
  Impl* raw = impl.get();
  absl::StatusOr<std::unique_ptr<base::Acceptor>> acceptor =
      base::Acceptor::Start(std::move(impl->listener), [raw](int fd) { raw->ServeConnection(fd); });
  if (!acceptor.ok()) return acceptor.status();
  impl->acceptor = std::move(*acceptor);
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  // Every session sees its client go away: processes it started end, attaches detach.
  impl_->acceptor.reset();
}

const std::string& Server::Address() const { return impl_->address; }

std::string Server::ExecUrl(ExecSession session) {
  return impl_->NewUrl("exec", std::move(session));
}
std::string Server::AttachUrl(AttachSession session) {
  return impl_->NewUrl("attach", std::move(session));
}
std::string Server::PortForwardUrl(PortForwardSession session) {
  return impl_->NewUrl("portforward", std::move(session));
}

}  // namespace kapal::streaming
