#include "streaming/spdy.h"

#include <unistd.h>

#include <cerrno>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "streaming/http.h"

namespace kapal::streaming {

namespace {

constexpr uint16_t kVersion = 3;
constexpr uint16_t kSynStream = 1;
constexpr uint16_t kSynReply = 2;
constexpr uint16_t kRstStream = 3;
constexpr uint16_t kSettings = 4;
constexpr uint16_t kPing = 6;
constexpr uint16_t kGoAway = 7;
constexpr uint16_t kHeaders = 8;
constexpr uint16_t kWindowUpdate = 9;
constexpr uint8_t kFlagFin = 0x01;
constexpr size_t kFrameHeader = 8;
constexpr size_t kMaxFrame = 16 * 1024 * 1024;

uint32_t Read32(absl::string_view bytes, size_t at) {
  return (static_cast<uint32_t>(static_cast<uint8_t>(bytes[at])) << 24) |
         (static_cast<uint32_t>(static_cast<uint8_t>(bytes[at + 1])) << 16) |
         (static_cast<uint32_t>(static_cast<uint8_t>(bytes[at + 2])) << 8) |
         static_cast<uint32_t>(static_cast<uint8_t>(bytes[at + 3]));
}

void Append32(std::string& out, uint32_t value) {
  for (int shift = 24; shift >= 0; shift -= 8) out += static_cast<char>((value >> shift) & 0xff);
}

}  // namespace

const std::string& SpdyHeaderDictionary() {
  // Length-prefixed words, then a run of status codes, reasons, dates and content types that
  // compress well against what HTTP headers hold.
  static const std::string dictionary = [] {
    static const char* const kWords[] = {"options",
                                         "head",
                                         "post",
                                         "put",
                                         "delete",
                                         "trace",
                                         "accept",
                                         "accept-charset",
                                         "accept-encoding",
                                         "accept-language",
                                         "accept-ranges",
                                         "age",
                                         "allow",
                                         "authorization",
                                         "cache-control",
                                         "connection",
                                         "content-base",
                                         "content-encoding",
                                         "content-language",
                                         "content-length",
                                         "content-location",
                                         "content-md5",
                                         "content-range",
                                         "content-type",
                                         "date",
                                         "etag",
                                         "expect",
                                         "expires",
                                         "from",
                                         "host",
                                         "if-match",
                                         "if-modified-since",
                                         "if-none-match",
                                         "if-range",
                                         "if-unmodified-since",
                                         "last-modified",
                                         "location",
                                         "max-forwards",
                                         "pragma",
                                         "proxy-authenticate",
                                         "proxy-authorization",
                                         "range",
                                         "referer",
                                         "retry-after",
                                         "server",
                                         "te",
                                         "trailer",
                                         "transfer-encoding",
                                         "upgrade",
                                         "user-agent",
                                         "vary",
                                         "via",
                                         "warning",
                                         "www-authenticate",
                                         "method",
                                         "get",
                                         "status",
                                         "200 OK",
                                         "version",
                                         "HTTP/1.1",
                                         "url",
                                         "public",
                                         "set-cookie",
                                         "keep-alive",
                                         "origin"};
    std::string text;
    for (const char* word : kWords) {
      Append32(text, static_cast<uint32_t>(absl::string_view(word).size()));
      text += word;
    }
    text +=
        "100101201202205206300302303304305306307402405406407408409410411412413414415416417502504"
        "505203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 "
        "Unauthorized403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 "
        "Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, "
        "Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,image/jpg,image/gif,application/"
        "xml,application/xhtml+xml,text/plain,text/javascript,publicprivatemax-age=gzip,deflate,"
        "sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";
    return text;
  }();
  return dictionary;
}

SpdyConnection::SpdyConnection(int fd) : fd_(fd) {
  inflateInit(&inflater_);
  deflateInit(&deflater_, Z_DEFAULT_COMPRESSION);
  const std::string& dictionary = SpdyHeaderDictionary();
  deflateSetDictionary(&deflater_, reinterpret_cast<const Bytef*>(dictionary.data()),
                       static_cast<uInt>(dictionary.size()));
}

SpdyConnection::~SpdyConnection() {
  inflateEnd(&inflater_);
  deflateEnd(&deflater_);
}

absl::Status SpdyConnection::ReadEvents(std::vector<SpdyEvent>& events) {
  char buffer[64 * 1024];
  ssize_t n = ::read(fd_, buffer, sizeof buffer);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return absl::OkStatus();
  if (n <= 0) return absl::UnavailableError("the client closed the connection");
  return Consume(absl::string_view(buffer, static_cast<size_t>(n)), events);
}

absl::Status SpdyConnection::Consume(absl::string_view bytes, std::vector<SpdyEvent>& events) {
  in_.append(bytes.data(), bytes.size());
  size_t at = 0;
  while (in_.size() - at >= kFrameHeader) {
    absl::string_view frame(in_.data() + at, in_.size() - at);
    uint32_t first = Read32(frame, 0);
    uint8_t flags = static_cast<uint8_t>(frame[4]);
    uint32_t length = Read32(frame, 4) & 0xffffff;
    if (length > kMaxFrame) return absl::UnavailableError("SPDY frame too large");
    if (frame.size() < kFrameHeader + length) break;
    absl::string_view body = frame.substr(kFrameHeader, length);
    if (first & 0x80000000u) {
      uint16_t version = static_cast<uint16_t>((first >> 16) & 0x7fff);
      if (version != kVersion) {
        return absl::UnavailableError(absl::StrCat("SPDY version ", version, ", not 3"));
      }
      if (absl::Status handled =
              HandleControl(static_cast<uint16_t>(first & 0xffff), flags, body, events);
          !handled.ok()) {
        return handled;
      }
    } else {
      SpdyEvent event{SpdyEvent::Kind::kData,
                      first & 0x7fffffffu,
                      {},
                      std::string(body),
                      (flags & kFlagFin) != 0};
      events.push_back(std::move(event));
    }
    at += kFrameHeader + length;
  }
  in_.erase(0, at);
  return absl::OkStatus();
}

absl::Status SpdyConnection::HandleControl(uint16_t type, uint8_t flags, absl::string_view body,
                                           std::vector<SpdyEvent>& events) {
  switch (type) {
    case kSynStream: {
      if (body.size() < 10) return absl::UnavailableError("short SYN_STREAM");
      absl::StatusOr<std::map<std::string, std::string>> headers = DecodeHeaders(body.substr(10));
      if (!headers.ok()) return headers.status();
      SpdyEvent event{SpdyEvent::Kind::kStreamOpened, Read32(body, 0) & 0x7fffffffu,
                      std::move(*headers), "", (flags & kFlagFin) != 0};
      events.push_back(std::move(event));
      return absl::OkStatus();
    }
    case kHeaders:
    case kSynReply:
      // Headers on an open stream: decoded to keep the compression context in step, unused.
      if (body.size() < 4) return absl::UnavailableError("short HEADERS");
      return DecodeHeaders(body.substr(4)).status();
    case kRstStream:
      if (body.size() < 8) return absl::UnavailableError("short RST_STREAM");
      events.push_back(
          {SpdyEvent::Kind::kStreamReset, Read32(body, 0) & 0x7fffffffu, {}, "", true});
      return absl::OkStatus();
    case kPing:
      if (body.size() < 4) return absl::UnavailableError("short PING");
      WriteControl(kPing, 0, std::string(body.substr(0, 4)));
      return absl::OkStatus();
    case kGoAway:
      events.push_back({SpdyEvent::Kind::kGoAway, 0, {}, "", true});
      return absl::OkStatus();
    case kSettings:
    case kWindowUpdate:
    default:
      return absl::OkStatus();
  }
}

absl::StatusOr<std::map<std::string, std::string>> SpdyConnection::DecodeHeaders(
    absl::string_view compressed) {
  std::string block;
  inflater_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(compressed.data()));
  inflater_.avail_in = static_cast<uInt>(compressed.size());
  char out[4096];
  for (;;) {
    inflater_.next_out = reinterpret_cast<Bytef*>(out);
    inflater_.avail_out = sizeof out;
    int result = inflate(&inflater_, Z_SYNC_FLUSH);
    if (result == Z_NEED_DICT) {
      const std::string& dictionary = SpdyHeaderDictionary();
      result = inflateSetDictionary(&inflater_, reinterpret_cast<const Bytef*>(dictionary.data()),
                                    static_cast<uInt>(dictionary.size()));
      if (result != Z_OK) return absl::UnavailableError("SPDY header dictionary refused");
      continue;
    }
    if (result != Z_OK && result != Z_BUF_ERROR) {
      return absl::UnavailableError(absl::StrCat("corrupt SPDY header block (zlib ", result,
                                                 inflater_.msg ? inflater_.msg : "", ")"));
    }
    block.append(out, sizeof out - inflater_.avail_out);
    if (inflater_.avail_in == 0 && inflater_.avail_out != 0) break;
    if (result == Z_BUF_ERROR) break;  // no progress possible
  }
  std::map<std::string, std::string> headers;
  if (block.size() < 4) return absl::UnavailableError("short SPDY header block");
  uint32_t count = Read32(block, 0);
  size_t at = 4;
  for (uint32_t i = 0; i < count; ++i) {
    if (block.size() < at + 4) return absl::UnavailableError("truncated SPDY header block");
    uint32_t name_length = Read32(block, at);
    at += 4;
    if (block.size() < at + name_length + 4) return absl::UnavailableError("truncated header");
    std::string name = absl::AsciiStrToLower(block.substr(at, name_length));
    at += name_length;
    uint32_t value_length = Read32(block, at);
    at += 4;
    if (block.size() < at + value_length) return absl::UnavailableError("truncated header");
    headers[name] = block.substr(at, value_length);
    at += value_length;
  }
  return headers;
}

std::string SpdyConnection::EncodeHeaders(const std::map<std::string, std::string>& headers) {
  std::string block;
  Append32(block, static_cast<uint32_t>(headers.size()));
  for (const auto& [name, value] : headers) {
    Append32(block, static_cast<uint32_t>(name.size()));
    block += name;
    Append32(block, static_cast<uint32_t>(value.size()));
    block += value;
  }
  std::string compressed;
  deflater_.next_in = reinterpret_cast<Bytef*>(block.data());
  deflater_.avail_in = static_cast<uInt>(block.size());
  char out[4096];
  do {
    deflater_.next_out = reinterpret_cast<Bytef*>(out);
    deflater_.avail_out = sizeof out;
    deflate(&deflater_, Z_SYNC_FLUSH);
    compressed.append(out, sizeof out - deflater_.avail_out);
  } while (deflater_.avail_out == 0);
  return compressed;
}

bool SpdyConnection::WriteControl(uint16_t type, uint8_t flags, const std::string& body) {
  std::string frame;
  Append32(frame, 0x80000000u | (static_cast<uint32_t>(kVersion) << 16) | type);
  Append32(frame, (static_cast<uint32_t>(flags) << 24) | static_cast<uint32_t>(body.size()));
  frame += body;
  return WriteAll(fd_, frame);
}

bool SpdyConnection::Reply(uint32_t stream) {
  std::string body;
  Append32(body, stream & 0x7fffffffu);
  body += EncodeHeaders({});
  return WriteControl(kSynReply, 0, body);
}

bool SpdyConnection::SendData(uint32_t stream, absl::string_view data, bool fin) {
  // Frames of at most 32 KiB keep one stream from holding the connection for long.
  constexpr size_t kChunk = 32 * 1024;
  do {
    absl::string_view part = data.substr(0, kChunk);
    data.remove_prefix(part.size());
    bool last = data.empty();
    std::string frame;
    Append32(frame, stream & 0x7fffffffu);
    Append32(frame, (static_cast<uint32_t>(last && fin ? kFlagFin : 0) << 24) |
                        static_cast<uint32_t>(part.size()));
    frame.append(part.data(), part.size());
    if (!WriteAll(fd_, frame)) return false;
  } while (!data.empty());
  return true;
}

bool SpdyConnection::Reset(uint32_t stream, uint32_t status) {
  std::string body;
  Append32(body, stream & 0x7fffffffu);
  Append32(body, status);
  return WriteControl(kRstStream, 0, body);
}

bool SpdyConnection::GoAway() {
  std::string body;
  Append32(body, 0);
  Append32(body, 0);
  return WriteControl(kGoAway, 0, body);
}

std::string SpdyConnection::EncodeSynStream(uint32_t stream,
                                            const std::map<std::string, std::string>& headers) {
  std::string body;
  Append32(body, stream & 0x7fffffffu);
  Append32(body, 0);
  body += '\0';
  body += '\0';
  body += EncodeHeaders(headers);
  std::string frame;
  Append32(frame, 0x80000000u | (static_cast<uint32_t>(kVersion) << 16) | kSynStream);
  Append32(frame, static_cast<uint32_t>(body.size()));
  return frame + body;
}

}  // namespace kapal::streaming
