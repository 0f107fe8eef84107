#include "docker/http_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/build_info.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "base/thread_set.h"
#include "base/unique_fd.h"
#include "base/unix_socket.h"

namespace kapal::docker {

namespace {

// A kept-alive connection with no request for this long is closed (the docker CLI opens a new
// one when it needs it).
constexpr auto kIdleTimeout = std::chrono::minutes(2);
// Bodies the API takes are small JSON documents (create, exec, network, volume).
constexpr size_t kMaxBody = 8 * 1024 * 1024;
// Bodies spooled to disk (build contexts) may be large, not unbounded.
constexpr size_t kMaxSpooledBody = size_t{64} << 30;
// A client that reads nothing of an answer for this long is cut off.
constexpr int kSendTimeoutSeconds = 60;

// Where a request body goes, piece by piece; LIMIT is the most it takes.
struct BodySink {
  std::function<absl::Status(const char*, size_t)> write;
  size_t limit = 0;
  size_t taken = 0;
};

// Reads exactly COUNT bytes (after what LEFTOVER holds) into SINK.
absl::Status ReadExactly(int fd, size_t count, std::string& leftover, BodySink& sink) {
  if (sink.taken + count > sink.limit) return absl::InvalidArgumentError("request body too large");
  sink.taken += count;
  size_t take = std::min(count, leftover.size());
  if (absl::Status written = sink.write(leftover.data(), take); !written.ok()) return written;
  leftover.erase(0, take);
  count -= take;
  std::vector<char> buffer(64 * 1024);
  while (count > 0) {
    ssize_t n = ::read(fd, buffer.data(), std::min(buffer.size(), count));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::UnavailableError("body cut short");
    if (absl::Status written = sink.write(buffer.data(), static_cast<size_t>(n)); !written.ok()) {
      return written;
    }
    count -= static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

// A line ending in CRLF from LEFTOVER and FD, without it.
bool ReadLine(int fd, std::string& leftover, std::string& line) {
  size_t end;
  while ((end = leftover.find("\r\n")) == std::string::npos) {
    if (leftover.size() > 4096) return false;
    char buffer[4096];
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    leftover.append(buffer, static_cast<size_t>(n));
  }
  line = leftover.substr(0, end);
  leftover.erase(0, end + 2);
  return true;
}

// The request's body by Content-Length or chunked transfer coding, into SINK. INVALID_ARGUMENT
// when it is malformed or too large; UNAVAILABLE when the client went away.
absl::Status ReadBody(int fd, const Request& request, std::string& leftover, BodySink& sink) {
  std::string encoding = absl::AsciiStrToLower(request.Header("transfer-encoding"));
  if (absl::StrContains(encoding, "chunked")) {
    for (;;) {
      std::string line;
      if (!ReadLine(fd, leftover, line)) return absl::UnavailableError("body cut short");
      size_t size = 0;
      std::string digits = line.substr(0, line.find(';'));
      if (!absl::SimpleHexAtoi(absl::StripAsciiWhitespace(digits), &size)) {
        return absl::InvalidArgumentError("malformed chunk size");
      }
      if (size == 0) {
        // Trailers (none expected) up to the empty line.
        while (ReadLine(fd, leftover, line) && !line.empty()) {
        }
        return absl::OkStatus();
      }
      if (absl::Status read = ReadExactly(fd, size, leftover, sink); !read.ok()) return read;
      if (!ReadLine(fd, leftover, line)) return absl::UnavailableError("body cut short");
    }
  }
  std::string length_text = request.Header("content-length");
  if (length_text.empty()) return absl::OkStatus();
  size_t length = 0;
  if (!absl::SimpleAtoi(length_text, &length)) {
    return absl::InvalidArgumentError("malformed Content-Length");
  }
  return ReadExactly(fd, length, leftover, sink);
}

std::string CommonHeaders() {
  return absl::StrCat("Api-Version: 1.41\r\nDocker-Experimental: false\r\nOstype: linux\r\n",
                      "Server: kapal/", base::kVersion, "\r\n");
}

}  // namespace

const char* ReasonPhrase(int code) {
  switch (code) {
    case 101:
      return "UPGRADED";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 204:
      return "No Content";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 409:
      return "Conflict";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 507:
      return "Insufficient Storage";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

std::string Request::Query(const std::string& name, const std::string& fallback) const {
  std::vector<std::string> values = QueryValues(name);
  return values.empty() ? fallback : values.front();
}

bool Request::QueryFlag(const std::string& name, bool fallback) const {
  std::vector<std::string> values = QueryValues(name);
  if (values.empty()) return fallback;
  std::string value = absl::AsciiStrToLower(values.front());
  return value == "1" || value == "true" || value == "yes";
}

bool Responder::WriteHead(int code, const std::string& content_type, const std::string& extra) {
  answered_ = true;
  std::string head =
      absl::StrCat("HTTP/1.1 ", code, " ", ReasonPhrase(code), "\r\n", CommonHeaders());
  if (!content_type.empty()) absl::StrAppend(&head, "Content-Type: ", content_type, "\r\n");
  absl::StrAppend(&head, extra_headers_, extra, "\r\n");
  return streaming::WriteAll(fd_, head);
}

void Responder::Text(int code, const std::string& content_type, absl::string_view body) {
  std::string head = absl::StrCat("Content-Length: ", body.size(), "\r\n");
  if (!WriteHead(code, content_type, head) || !streaming::WriteAll(fd_, body)) {
    keep_alive_ = false;
  }
}

void Responder::Json(int code, const nlohmann::json& body) {
  Text(code, "application/json",
       body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

void Responder::Empty(int code) {
  if (!WriteHead(code, "", code == 204 || code == 304 ? "" : "Content-Length: 0\r\n")) {
    keep_alive_ = false;
  }
}

void Responder::Error(int code, const std::string& message) { Json(code, {{"message", message}}); }

bool Responder::StartStream(int code, const std::string& content_type) {
  if (!WriteHead(code, content_type, "Transfer-Encoding: chunked\r\n")) {
    keep_alive_ = false;
    return false;
  }
  return true;
}

bool Responder::WriteChunk(absl::string_view data) {
  if (!keep_alive_) return false;
  if (data.empty()) return true;  // an empty chunk would end the body
  std::string framed = absl::StrCat(absl::Hex(data.size()), "\r\n");
  framed.append(data.data(), data.size());
  framed += "\r\n";
  if (!streaming::WriteAll(fd_, framed)) keep_alive_ = false;
  return keep_alive_;
}

void Responder::EndStream() {
  if (keep_alive_ && !streaming::WriteAll(fd_, "0\r\n\r\n")) keep_alive_ = false;
}

int Responder::Hijack(const Request& request, const std::string& content_type) {
  keep_alive_ = false;
  bool upgrade = absl::AsciiStrToLower(request.Header("upgrade")) == "tcp";
  if (upgrade) {
    WriteHead(101, content_type, "Connection: Upgrade\r\nUpgrade: tcp\r\n");
  } else {
    WriteHead(200, content_type, "Connection: close\r\n");
  }
  return fd_;
}

bool Responder::ClientGone() const {
  if (stopping_.load()) return true;
  pollfd polled{fd_, POLLRDHUP, 0};
  return ::poll(&polled, 1, 0) > 0 && (polled.revents & (POLLRDHUP | POLLHUP | POLLERR)) != 0;
}

struct HttpServer::Impl {
  ServerOptions options;
  Handler handler;
  base::Logger& logger;
  std::atomic<bool> stopping{false};
  std::unique_ptr<base::Acceptor> acceptor;
  std::unique_ptr<base::Acceptor> tcp_acceptor;
  int tcp_port = 0;

  Impl(ServerOptions options_in, Handler handler_in, base::Logger& logger_in)
      : options(std::move(options_in)), handler(std::move(handler_in)), logger(logger_in) {}

  // A TCP connection: the TLS handshake (a client without the right certificate ends here),
  // then the same HTTP on the pump's plain end.
  void ServeTcp(int fd) {
    if (!options.tls) return Serve(fd);
    absl::StatusOr<std::unique_ptr<streaming::TlsPump>> pump =
        streaming::TlsPump::Accept(*options.tls, fd);
    if (!pump.ok()) {
      logger.Info("docker api: TLS connection refused: ", pump.status().message());
      return;
    }
    Serve((*pump)->Plain());
    (*pump)->ClosePlain();
  }

  void Serve(int fd) {
    timeval send_timeout{kSendTimeoutSeconds, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
    std::string leftover;
    while (!stopping) {
      absl::StatusOr<streaming::HttpRequest> head = streaming::ReadRequest(
          fd, std::chrono::duration_cast<std::chrono::milliseconds>(kIdleTimeout), leftover);
      if (!head.ok()) {
        if (absl::IsInvalidArgument(head.status())) {
          streaming::WriteError(fd, 400, "Bad Request", std::string(head.status().message()));
        }
        return;
      }
      Request request;
      static_cast<streaming::HttpRequest&>(request) = std::move(*head);
      Responder responder(fd, stopping);
      // Large uploads (a build context) go to a file that lives as long as the request.
      std::optional<base::TempDir> spool;
      base::UniqueFd spool_fd;
      BodySink sink;
      if (options.spool_body && options.spool_body(request)) {
        absl::StatusOr<base::TempDir> made = base::TempDir::Create("body", options.spool_dir);
        if (!made.ok()) {
          responder.Error(500, std::string(made.status().message()));
          return;
        }
        spool.emplace(std::move(*made));
        request.body_file = spool->Join("body");
        spool_fd = base::UniqueFd(
            ::open(request.body_file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
        if (!spool_fd) {
          responder.Error(500, "cannot create " + request.body_file);
          return;
        }
        sink.limit = kMaxSpooledBody;
        sink.write = [&spool_fd, &request](const char* data, size_t size) {
          absl::Status written =
              base::WriteAll(spool_fd.Get(), absl::string_view(data, size), request.body_file);
          return written.ok() ? written
                              : absl::ResourceExhaustedError(absl::StrCat(
                                    "cannot keep the request body: ", written.message()));
        };
      } else {
        sink.limit = kMaxBody;
        sink.write = [&request](const char* data, size_t size) {
          request.body.append(data, size);
          return absl::OkStatus();
        };
      }
      if (absl::Status read = ReadBody(fd, request, leftover, sink); !read.ok()) {
        if (absl::IsInvalidArgument(read)) responder.Error(400, std::string(read.message()));
        if (absl::IsResourceExhausted(read)) responder.Error(507, std::string(read.message()));
        return;
      }
      spool_fd.Reset();
      handler(request, responder);
      if (!responder.KeepAlive() ||
          absl::AsciiStrToLower(request.Header("connection")) == "close") {
        return;
      }
    }
  }
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const ServerOptions& options,
                                                              Handler handler,
                                                              base::Logger& logger) {
  auto impl = std::make_unique<Impl>(options, std::move(handler), logger);
  absl::StatusOr<base::UniqueFd> listener =
      base::ListenUnixSocket(options.socket_path, options.mode, options.group, "docker.address");
  if (!listener.ok()) return listener.status();
  Impl* raw = impl.get();
  absl::StatusOr<std::unique_ptr<base::Acceptor>> acceptor =
      base::Acceptor::Start(std::move(*listener), [raw](int fd) { raw->Serve(fd); });
  if (!acceptor.ok()) return acceptor.status();
  impl->acceptor = std::move(*acceptor);
  if (!options.tcp_host.empty()) {
    absl::StatusOr<base::TcpListener> tcp =
        base::ListenTcp(options.tcp_host, options.tcp_port, "docker.tcp_address");
    if (!tcp.ok()) return tcp.status();
    impl->tcp_port = tcp->port;
    absl::StatusOr<std::unique_ptr<base::Acceptor>> tcp_acceptor =
        base::Acceptor::Start(std::move(tcp->fd), [raw](int fd) { raw->ServeTcp(fd); });
    if (!tcp_acceptor.ok()) return tcp_acceptor.status();
    impl->tcp_acceptor = std::move(*tcp_acceptor);
  }
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

int HttpServer::TcpPort() const { return impl_->tcp_port; }

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() {
  // Handlers waiting on a client (wait, logs -f, attach) see it go and return.
  impl_->stopping = true;
  impl_->tcp_acceptor.reset();
  impl_->acceptor.reset();
  ::unlink(impl_->options.socket_path.c_str());
}

}  // namespace kapal::docker
