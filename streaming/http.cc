#include "streaming/http.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kapal::streaming {

namespace {

constexpr size_t kMaxHead = 16 * 1024;

std::string PercentDecode(absl::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '+') {
      out += ' ';
    } else if (c == '%' && i + 2 < text.size() && absl::ascii_isxdigit(text[i + 1]) &&
               absl::ascii_isxdigit(text[i + 2])) {
      out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string HttpRequest::Header(const std::string& name) const {
  auto found = headers.find(name);
  return found == headers.end() ? "" : found->second;
}

std::vector<std::string> HttpRequest::HeaderList(const std::string& name) const {
  std::vector<std::string> values;
  auto [begin, end] = headers.equal_range(name);
  for (auto it = begin; it != end; ++it) {
    for (absl::string_view part : absl::StrSplit(it->second, ',')) {
      part = absl::StripAsciiWhitespace(part);
      if (!part.empty()) values.emplace_back(part);
    }
  }
  return values;
}

std::vector<std::string> HttpRequest::QueryValues(const std::string& name) const {
  std::vector<std::string> values;
  for (absl::string_view pair : absl::StrSplit(query, '&', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(pair, absl::MaxSplits('=', 1));
    if (PercentDecode(kv.first) == name) values.push_back(PercentDecode(kv.second));
  }
  return values;
}

absl::StatusOr<HttpRequest> ReadRequest(int fd, std::chrono::milliseconds timeout,
                                        std::string& leftover) {
  // Bytes already read past an earlier request on a kept-alive connection start this one.
  std::string head = std::move(leftover);
  leftover.clear();
  auto deadline = std::chrono::steady_clock::now() + timeout;
  size_t end = std::string::npos;
  while ((end = head.find("\r\n\r\n")) == std::string::npos) {
    if (head.size() > kMaxHead) return absl::InvalidArgumentError("request head too large");
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return absl::DeadlineExceededError("no request in time");
    pollfd polled{fd, POLLIN, 0};
    if (::poll(&polled, 1, static_cast<int>(left.count())) <= 0) continue;
    char buffer[4096];
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return absl::UnavailableError("client closed before its request");
    head.append(buffer, static_cast<size_t>(n));
  }
  leftover = head.substr(end + 4);
  head.resize(end);
  std::vector<std::string> lines = absl::StrSplit(head, "\r\n");
  HttpRequest request;
  std::vector<std::string> words = absl::StrSplit(lines[0], ' ', absl::SkipEmpty());
  if (words.size() != 3 || !absl::StartsWith(words[2], "HTTP/1.")) {
    return absl::InvalidArgumentError(absl::StrCat("not an HTTP/1.1 request: ", lines[0]));
  }
  request.method = words[0];
  std::string target = words[1];
  size_t question = target.find('?');
  request.path = target.substr(0, question);
  if (question != std::string::npos) request.query = target.substr(question + 1);
  for (size_t i = 1; i < lines.size(); ++i) {
    size_t colon = lines[i].find(':');
    if (colon == std::string::npos) continue;
    request.headers.emplace(absl::AsciiStrToLower(lines[i].substr(0, colon)),
                            std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1))));
  }
  return request;
}

bool WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool ReadAvailable(int fd, std::string& out) {
  char buffer[64 * 1024];
  ssize_t n = ::read(fd, buffer, sizeof buffer);
  if (n > 0) {
    out.assign(buffer, static_cast<size_t>(n));
    return true;
  }
  out.clear();
  return n < 0 && (errno == EAGAIN || errno == EINTR);
}

void WriteError(int fd, int code, const std::string& reason, const std::string& text) {
  std::string body = text + "\n";
  WriteAll(fd, absl::StrCat("HTTP/1.1 ", code, " ", reason,
                            "\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ",
                            body.size(), "\r\nConnection: close\r\n\r\n", body));
}

}  // namespace kapal::streaming
