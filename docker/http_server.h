#pragma once

#include <sys/types.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/logger.h"
#include "nlohmann/json.hpp"
#include "streaming/http.h"
#include "streaming/tls.h"

// The HTTP/1.1 server under the Docker API: a unix socket, a thread per connection, kept-alive
// connections, chunked streamed answers (pull progress, logs -f, stats, wait) and the connection
// hijack of attach and exec (101 UPGRADED, then raw bytes both ways). cpp-httplib cannot hand a
// connection over, so this is ours; the request head parser is the streaming server's.
namespace kapal::docker {

struct Request : streaming::HttpRequest {
  std::string body;
  // Set instead of BODY for a request the server spools to disk (ServerOptions::spool_body):
  // the file, removed after the handler returns.
  std::string body_file;
  // The first value of query parameter NAME, FALLBACK when absent.
  std::string Query(const std::string& name, const std::string& fallback = "") const;
  // Docker's booleans in a query: "1", "true", "True" (absent: FALLBACK).
  bool QueryFlag(const std::string& name, bool fallback = false) const;
};

// One answer to one request: exactly one of the ways below is used.
class Responder {
 public:
  Responder(int fd, const std::atomic<bool>& stopping) : fd_(fd), stopping_(stopping) {}

  // A header for the answer, before it is started (NAME and VALUE without line breaks).
  void AddHeader(const std::string& name, const std::string& value) {
    extra_headers_ += name + ": " + value + "\r\n";
  }

  void Json(int code, const nlohmann::json& body);
  void Text(int code, const std::string& content_type, absl::string_view body);
  void Empty(int code);
  // Docker's error answer: {"message": MESSAGE}.
  void Error(int code, const std::string& message);

  // A body of unknown length, sent in chunks as it is made. False once the client is gone.
  bool StartStream(int code, const std::string& content_type);
  bool WriteChunk(absl::string_view data);
  void EndStream();

  // Hands the connection over: "101 UPGRADED" when the client asked for an upgrade, else a 200
  // with a body that ends when the connection does. Returns the descriptor (still the server's
  // to close, after the handler returns); nothing more is read as HTTP from it.
  int Hijack(const Request& request, const std::string& content_type);

  // The client hung up (or the server stops): long waits give up.
  bool ClientGone() const;
  bool Stopping() const { return stopping_.load(); }
  // Whether the connection can carry another request after this answer.
  bool KeepAlive() const { return keep_alive_; }

 private:
  bool WriteHead(int code, const std::string& content_type, const std::string& extra);

  int fd_;
  const std::atomic<bool>& stopping_;
  bool keep_alive_ = true;
  bool answered_ = false;
  std::string extra_headers_;
};

using Handler = std::function<void(const Request&, Responder&)>;

struct ServerOptions {
  std::string socket_path;
  mode_t mode = 0660;
  gid_t group = 0;
  // Requests this says yes to have their body written to a file under SPOOL_DIR rather than
  // kept in memory (build contexts: gigabytes are not unusual).
  std::function<bool(const streaming::HttpRequest&)> spool_body;
  std::string spool_dir;
  // Also on TCP (HOST:PORT), when set: over TLS when TLS is given (mutual TLS is the caller's
  // choice of context), else plain (the caller allows that only on loopback).
  std::string tcp_host;
  int tcp_port = 0;
  std::shared_ptr<streaming::TlsContext> tls;
};

class HttpServer {
 public:
  // Binds SOCKET_PATH (a stale socket left by a crash is replaced), owned by root and GROUP with
  // MODE from the first moment, and serves HANDLER on it.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const ServerOptions& options,
                                                           Handler handler, base::Logger& logger);
  ~HttpServer();  // closes every connection, waits for the handlers, removes the socket
  // The TCP port served (the one the kernel picked for port 0); 0 without TCP.
  int TcpPort() const;

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The HTTP reason phrase of CODE.
const char* ReasonPhrase(int code);

}  // namespace kapal::docker
