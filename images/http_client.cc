#include "images/http_client.h"

#include <curl/curl.h>
#include <fcntl.h>
#include <unistd.h>

#include <memory>
#include <mutex>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/unique_fd.h"

namespace kapal::images {

namespace {

constexpr long kBufferBytes = 512 * 1024;

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
  // An upload from a file.
  const HttpUpload* upload = nullptr;
  int file = -1;
  int64_t sent = 0;
  bool file_failed = false;
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

// The next piece of an upload file (0 at its end).
size_t OnUploadRead(char* into, size_t size, size_t count, void* user) {
  auto* transfer = static_cast<Transfer*>(user);
  int64_t left = transfer->upload->size - transfer->sent;
  if (left <= 0) return 0;
  size_t wanted = std::min(size * count, static_cast<size_t>(left));
  ssize_t got = ::pread(transfer->file, into, wanted, transfer->sent);
  if (got <= 0) {
    // A file shorter than its SIZE, or unreadable: libcurl must not send a short body.
    transfer->file_failed = true;
    return CURL_READFUNC_ABORT;
  }
  transfer->sent += got;
  if (transfer->upload->progress) transfer->upload->progress(transfer->sent);
  return static_cast<size_t>(got);
}

}  // namespace

absl::Status HttpRequest(const std::string& method, const std::string& url,
                         const std::vector<std::string>& headers, const HttpUpload* upload,
                         const HttpOptions& options, const HttpHeadCallback& head,
                         const HttpBodyCallback& body) {
  // libcurl's process-wide set-up, before the first handle (not every build of it makes that
  // safe to race).
  static std::once_flag curl_ready;
  std::call_once(curl_ready, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });

  Transfer transfer;
  transfer.head = &head;
  transfer.body = &body;
  transfer.upload = upload;
  base::UniqueFd file;
  if (upload != nullptr && !upload->path.empty()) {
    file.Reset(::open(upload->path.c_str(), O_RDONLY | O_CLOEXEC));
    if (!file) return absl::NotFoundError(absl::StrCat("cannot read ", upload->path));
    transfer.file = file.Get();
  }

  std::unique_ptr<CURL, EasyDeleter> easy(curl_easy_init());
  if (!easy) return absl::InternalError(absl::StrCat(url, ": libcurl could not start a request"));
  std::vector<std::string> all_headers = headers;
  if (upload != nullptr) {
    // "Name:" with nothing after it keeps libcurl from adding that field: no form content type
    // of its own, and no Expect: 100-continue round trip before a large body.
    all_headers.push_back("Content-Type:" +
                          (upload->content_type.empty() ? "" : " " + upload->content_type));
    all_headers.push_back("Expect:");
  }
  std::unique_ptr<curl_slist, ListDeleter> list;
  for (const std::string& header : all_headers) {
    curl_slist* longer = curl_slist_append(list.get(), header.c_str());
    if (longer == nullptr) return absl::ResourceExhaustedError("curl_slist_append");
    (void)list.release();
    list.reset(longer);
  }
  char error[CURL_ERROR_SIZE] = {};
  CURL* handle = easy.get();
  curl_easy_setopt(handle, CURLOPT_URL, url.c_str());
  if (method == "GET") {
    curl_easy_setopt(handle, CURLOPT_HTTPGET, 1L);
  } else if (method == "HEAD") {
    curl_easy_setopt(handle, CURLOPT_NOBODY, 1L);
  } else if (method == "POST" || method == "PUT") {
    HttpUpload nothing;
    const HttpUpload& sent = upload != nullptr ? *upload : nothing;
    if (sent.path.empty()) {
      curl_easy_setopt(handle, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(sent.bytes.size()));
      curl_easy_setopt(handle, CURLOPT_POSTFIELDS, sent.bytes.data());
      if (method == "PUT") curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, "PUT");
    } else {
      curl_easy_setopt(handle, CURLOPT_UPLOAD, 1L);  // a PUT
      if (method == "POST") curl_easy_setopt(handle, CURLOPT_CUSTOMREQUEST, "POST");
      curl_easy_setopt(handle, CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(sent.size));
      curl_easy_setopt(handle, CURLOPT_READFUNCTION, OnUploadRead);
      curl_easy_setopt(handle, CURLOPT_READDATA, &transfer);
      curl_easy_setopt(handle, CURLOPT_UPLOAD_BUFFERSIZE, kBufferBytes);
    }
  } else {
    return absl::InvalidArgumentError(absl::StrCat("HTTP method ", method, " is not supported"));
  }
  curl_easy_setopt(handle, CURLOPT_HTTPHEADER, list.get());
  curl_easy_setopt(handle, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(handle, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(handle, CURLOPT_PROXY, "");     // as before libcurl: no proxy from the env
  curl_easy_setopt(handle, CURLOPT_NOSIGNAL, 1L);  // many threads pull at once
  curl_easy_setopt(handle, CURLOPT_BUFFERSIZE, kBufferBytes);
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
  if (transfer.file_failed) {
    return absl::DataLossError(
        absl::StrCat(upload->path, " is shorter than the ", upload->size, " bytes to send"));
  }
  if (code == CURLE_OPERATION_TIMEDOUT && transfer.head_delivered) {
    // The low-speed limit: the server stopped sending in the middle of a response.
    return absl::DeadlineExceededError(absl::StrCat(
        url, ": no progress for ", options.read_timeout.count(), " s; the transfer was cancelled"));
  }
  if (code != CURLE_OK) {
    std::string detail = error[0] != '\0' ? error : curl_easy_strerror(code);
    return absl::UnavailableError(absl::StrCat(url, ": ", detail));
  }
  if (!transfer.head_delivered) {
    // libcurl reported success without a complete head: say so rather than guess.
    return absl::UnavailableError(absl::StrCat(url, ": no complete response head"));
  }
  return absl::OkStatus();
}

}  // namespace kapal::images
