#include "streaming/tls.h"

#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "base/files.h"

namespace kapal::streaming {

namespace {

std::string OpenSslError(const std::string& what) {
  unsigned long code = ERR_get_error();
  char text[256] = "unknown error";
  if (code != 0) ERR_error_string_n(code, text, sizeof text);
  return absl::StrCat(what, ": ", text);
}

// A self-signed certificate for HOST (its IP address or name as the subject alternative name),
// valid for a year, with a fresh P-256 key.
absl::Status UseSelfSigned(SSL_CTX* context, const std::string& host) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  if (key == nullptr) return absl::InternalError(OpenSslError("make a TLS key"));
  X509* certificate = X509_new();
  X509_set_version(certificate, 2);
  unsigned char serial_bytes[16];
  RAND_bytes(serial_bytes, sizeof serial_bytes);
  BIGNUM* serial = BN_bin2bn(serial_bytes, sizeof serial_bytes, nullptr);
  BN_to_ASN1_INTEGER(serial, X509_get_serialNumber(certificate));
  BN_free(serial);
  X509_gmtime_adj(X509_getm_notBefore(certificate), -60);
  X509_gmtime_adj(X509_getm_notAfter(certificate), 365L * 24 * 3600);
  X509_set_pubkey(certificate, key);
  X509_NAME* name = X509_get_subject_name(certificate);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("kapal streaming"), -1, -1, 0);
  X509_set_issuer_name(certificate, name);
  bool is_ip = !host.empty() && host.find_first_not_of("0123456789.:") == std::string::npos;
  std::string alt_name = absl::StrCat(is_ip ? "IP:" : "DNS:", host.empty() ? "localhost" : host);
  X509V3_CTX v3;
  X509V3_set_ctx(&v3, certificate, certificate, nullptr, nullptr, 0);
  if (X509_EXTENSION* extension =
          X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, alt_name.c_str())) {
    X509_add_ext(certificate, extension, -1);
    X509_EXTENSION_free(extension);
  }
  bool ok = X509_sign(certificate, key, EVP_sha256()) > 0 &&
            SSL_CTX_use_certificate(context, certificate) == 1 &&
            SSL_CTX_use_PrivateKey(context, key) == 1;
  X509_free(certificate);
  EVP_PKEY_free(key);
  if (!ok) return absl::InternalError(OpenSslError("self-signed streaming certificate"));
  return absl::OkStatus();
}

}  // namespace

struct TlsContext::Impl {
  SSL_CTX* context = nullptr;
  ~Impl() { SSL_CTX_free(context); }
};

TlsContext::TlsContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TlsContext::~TlsContext() = default;

absl::StatusOr<std::unique_ptr<TlsContext>> TlsContext::ForServer(
    const std::string& cert_file, const std::string& key_file, const std::string& host,
    const std::string& client_ca_file) {
  auto impl = std::make_unique<Impl>();
  impl->context = SSL_CTX_new(TLS_server_method());
  if (impl->context == nullptr) return absl::InternalError(OpenSslError("TLS context"));
  SSL_CTX_set_min_proto_version(impl->context, TLS1_2_VERSION);
  if (cert_file.empty() != key_file.empty()) {
    return absl::InvalidArgumentError("TLS needs both a certificate and a key file");
  }
  if (cert_file.empty()) {
    if (absl::Status made = UseSelfSigned(impl->context, host); !made.ok()) return made;
  } else if (SSL_CTX_use_certificate_chain_file(impl->context, cert_file.c_str()) != 1 ||
             SSL_CTX_use_PrivateKey_file(impl->context, key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
             SSL_CTX_check_private_key(impl->context) != 1) {
    return absl::InvalidArgumentError(
        OpenSslError(absl::StrCat("TLS key pair ", cert_file, ", ", key_file)));
  }
  if (!client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(impl->context, client_ca_file.c_str(), nullptr) != 1) {
      return absl::InvalidArgumentError(
          OpenSslError(absl::StrCat("TLS client CA ", client_ca_file)));
    }
    // The CA's name goes into the certificate request, so a client picks the right certificate.
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(client_ca_file.c_str())) {
      SSL_CTX_set_client_CA_list(impl->context, names);
    }
    SSL_CTX_set_verify(impl->context, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  return std::unique_ptr<TlsContext>(new TlsContext(std::move(impl)));
}

absl::StatusOr<std::unique_ptr<TlsContext>> TlsContext::ForInsecureClient() {
  auto impl = std::make_unique<Impl>();
  impl->context = SSL_CTX_new(TLS_client_method());
  if (impl->context == nullptr) return absl::InternalError(OpenSslError("TLS context"));
  SSL_CTX_set_verify(impl->context, SSL_VERIFY_NONE, nullptr);
  return std::unique_ptr<TlsContext>(new TlsContext(std::move(impl)));
}

struct TlsPump::Connection {
  SSL* ssl = nullptr;
  int tcp = -1;
  base::UniqueFd inner;  // the pump's end of the socketpair
  ~Connection() { SSL_free(ssl); }

  // Moves bytes both ways until either side ends; the other side is then told. A remote
  // close_notify is a half-close (Go's CloseWrite, as the docker CLI does once its stdin is
  // done): what the local side still sends goes out until it ends too.
  void Run() {
    char buffer[32 * 1024];
    bool remote_done = false;
    for (;;) {
      pollfd fds[2] = {{remote_done ? -1 : tcp, POLLIN, 0}, {inner.Get(), POLLIN, 0}};
      bool buffered = !remote_done && SSL_pending(ssl) > 0;
      if (!buffered && ::poll(fds, 2, -1) < 0 && errno != EINTR) break;
      if (buffered || fds[0].revents != 0) {
        int n = SSL_read(ssl, buffer, sizeof buffer);
        if (n <= 0) {
          int error = SSL_get_error(ssl, n);
          if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) continue;
          ::shutdown(inner.Get(), SHUT_WR);           // the remote side is done sending
          if (error != SSL_ERROR_ZERO_RETURN) break;  // ... or gone
          remote_done = true;
          continue;
        }
        if (!WriteAllFd(inner.Get(), buffer, static_cast<size_t>(n))) break;
      }
      if (fds[1].revents != 0) {
        ssize_t n = ::read(inner.Get(), buffer, sizeof buffer);
        if (n <= 0) {
          SSL_shutdown(ssl);  // our side is done: close_notify, then the connection ends
          break;
        }
        if (!SslWriteAll(buffer, static_cast<size_t>(n))) break;
      }
    }
    inner.Reset();
  }

  // The TCP socket is non-blocking (a blocking SSL_read would wait for application data while
  // the other direction has some to send): a write waits for the socket as TLS asks.
  bool SslWriteAll(const char* data, size_t size) {
    while (size > 0) {
      int n = SSL_write(ssl, data, static_cast<int>(size));
      if (n > 0) {
        data += n;
        size -= static_cast<size_t>(n);
        continue;
      }
      int error = SSL_get_error(ssl, n);
      if (error != SSL_ERROR_WANT_WRITE && error != SSL_ERROR_WANT_READ) return false;
      pollfd polled{tcp, static_cast<short>(error == SSL_ERROR_WANT_WRITE ? POLLOUT : POLLIN), 0};
      if (::poll(&polled, 1, 30 * 1000) <= 0) return false;  // a client that reads nothing
    }
    return true;
  }

  static bool WriteAllFd(int fd, const char* data, size_t size) {
    while (size > 0) {
      ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      data += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  }
};

absl::StatusOr<std::unique_ptr<TlsPump>> TlsPump::Accept(TlsContext& context, int tcp) {
  timeval handshake_timeout{10, 0};
  ::setsockopt(tcp, SOL_SOCKET, SO_RCVTIMEO, &handshake_timeout, sizeof handshake_timeout);
  absl::StatusOr<std::unique_ptr<TlsPump>> pump = Start(context, tcp, /*server=*/true);
  timeval none{0, 0};
  ::setsockopt(tcp, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none);
  return pump;
}

absl::StatusOr<std::unique_ptr<TlsPump>> TlsPump::Start(TlsContext& context, int tcp, bool server) {
  auto connection = std::make_unique<Connection>();
  connection->tcp = tcp;
  connection->ssl = SSL_new(context.impl_->context);
  if (connection->ssl == nullptr) return absl::InternalError(OpenSslError("TLS session"));
  SSL_set_fd(connection->ssl, tcp);
  if ((server ? SSL_accept(connection->ssl) : SSL_connect(connection->ssl)) != 1) {
    return absl::UnavailableError(OpenSslError("TLS handshake"));
  }
  ::fcntl(tcp, F_SETFL, ::fcntl(tcp, F_GETFL) | O_NONBLOCK);
  int ends[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ends) != 0) {
    return base::ErrnoStatus(errno, "socketpair");
  }
  std::unique_ptr<TlsPump> pump(new TlsPump);
  pump->plain_.Reset(ends[0]);
  connection->inner.Reset(ends[1]);
  pump->connection_ = std::move(connection);
  Connection* raw = pump->connection_.get();
  pump->thread_ = std::thread([raw] { raw->Run(); });
  return pump;
}

TlsPump::~TlsPump() {
  plain_.Reset();
  if (thread_.joinable()) thread_.join();
}

}  // namespace kapal::streaming
