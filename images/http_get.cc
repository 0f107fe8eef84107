#include "images/http_get.h"

#include <curl/curl.h>

#include <memory>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kapal::images {

namespace {

constexpr long kReadBufferBytes = 512 * 1024;

struct EasyDeleter {
  void operator()(CURL* handle) const { curl_easy_cleanup(handle); }
};
struct ListDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

// What the callbacks see of one transfer.
struct Transfer {
  const HttpHeadCallback* head = nullptr;
  const HttpBodyCallback* body = nullptr;
  int status = 0;
  std::multimap<std::string, std::string> fields;
  bool head_delivered = false;
  bool stopped_by_body = false;
};

// libcurl hands over the head line by line: the status line, the fields, an empty line; an
// interim 1xx response comes as a block of its own before the final one.
size_t OnHeaderLine(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  size_t length = size * count;
  absl::string_view line = absl::StripTrailingAsciiWhitespace(absl::string_view(data, length));
  if (absl::StartsWith(line, "HTTP/")) {
    std::vector<absl::string_view> words = absl::StrSplit(line, absl::MaxSplits(' ', 2));
    int status = 0;
    if (words.size() >= 2 && absl::SimpleAtoi(words[1], &status)) transfer->status = status;
    transfer->fields.clear();
  } else if (line.empty()) {
    if (transfer->status >= 200 && !transfer->head_delivered) {
      transfer->head_delivered = true;
      (*transfer->head)(transfer->status, transfer->fields);
    }
  } else if (size_t colon = line.find(':'); colon != absl::string_view::npos) {
    transfer->fields.emplace(std::string(line.substr(0, colon)),
                             std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
  }
  return length;
}

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  size_t length = size * count;
  if (!(*transfer->body)(data, length)) {
    transfer->stopped_by_body = true;
    return length == 0 ? 1 : 0;  // any other count than LENGTH makes libcurl stop
  }
  return length;
}

}  // namespace

absl::Status HttpGet(const std::string& url, const std::vector<std::string>& headers,
                     const HttpGetOptions& options, const HttpHeadCallback& head,
                     const HttpBodyCallback& body) {
  // libcurl's process-wide set-up, before the first handle (not every build of it makes that
  // safe to race).
  static std::once_flag curl_ready;
  std::call_once(curl_ready, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });

  std::unique_ptr<CURL, EasyDeleter> easy(curl_easy_init());
  if (!easy) return absl::InternalError(absl::StrCat(url, ": libcurl could not start a transfer"));
  std::unique_ptr<curl_slist, ListDeleter> list;
  for (const std::string& header : headers) {
    curl_slist* longer = curl_slist_append(list.get(), header.c_str());
    if (longer == nullptr) return absl::ResourceExhaustedError("curl_slist_append");
    (void)list.release();
    list.reset(longer);
  }
  Transfer transfer;
  transfer.head = &head;
  transfer.body = &body;
  char error[CURL_ERROR_SIZE] = {};
  CURL* handle = easy.get();
  curl_easy_setopt(handle, CURLOPT_URL, url.c_str());
  curl_easy_setopt(handle, CURLOPT_HTTPGET, 1L);
  curl_easy_setopt(handle, CURLOPT_HTTPHEADER, list.get());
  curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(handle, CURLOPT_PROXY, "");     // as before libcurl: no proxy from the env
  curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);  // many threads pull at once
  curl_easy_setopt(handle, CURLOPT_BUFFERSIZE, kReadBufferBytes);
  curl_easy_setopt(handle, CURLOPT_CONNECTTIMEOUT,
                   static_cast<long>(options.connect_timeout.count()));
  curl_easy_setopt(handle, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(handle, CURLOPT_LOW_SPEED_TIME, static_cast<long>(options.read_timeout.count()));
  curl_easy_setopt(handle, CURLOPT_SSL_VERIFYPEER, options.verify_tls ? 1L : 0L);
  curl_easy_setopt(handle, CURLOPT_SSL_VERIFYHOST, options.verify_tls ? 2L : 0L);
  if (!options.ca_file.empty()) curl_easy_setopt(handle, CURLOPT_CAINFO, options.ca_file.c_str());
  curl_easy_setopt(handle, CURLOPT_HEADERFUNCTION, OnHeaderLine);
  curl_easy_setopt(handle, CURLOPT_HEADERDATA, &transfer);
  curl_easy_setopt(handle, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(handle, CURLOPT_WRITEDATA, &transfer);
  curl_easy_setopt(handle, CURLOPT_ERRORBUFFER, error);

  CURLcode code = curl_easy_perform(handle);
  if (transfer.stopped_by_body) return absl::AbortedError(absl::StrCat(url, ": stopped"));
  if (code != CURLE_OK) {
    std::string detail = error[0] != '\0' ? error : curl_easy_strerror(code);
    return absl::UnavailableError(absl::StrCat(url, ": ", detail));
  }
  if (!transfer.head_delivered) {
    // A response without an empty line after its head cannot reach here with CURLE_OK, but a
    // body callback must never run before the head: say so rather than guess.
    return absl::UnavailableError(absl::StrCat(url, ": no complete response head"));
  }
  return absl::OkStatus();
}

}  // namespace kapal::images
