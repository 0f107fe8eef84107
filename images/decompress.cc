#include "images/decompress.h"

#include <archive.h>
#include <fcntl.h>
#include <isa-l/igzip_lib.h>
#include <unistd.h>
#include <zstd.h>
#include <zstd_errors.h>

#include <cerrno>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/files.h"
#include "base/unique_fd.h"

namespace kapal::images {

namespace {

// Compressed bytes are read from the blob file in pieces this large: a layer of 200 MB costs
// two hundred reads, not thousands, and three layers unpacking at once stay small in memory.
constexpr size_t kInputBytes = 1 << 20;

bool IsGzip(const uint8_t* head, size_t size) {
  return size >= 2 && head[0] == 0x1f && head[1] == 0x8b;
}
bool IsZstd(const uint8_t* head, size_t size) {
  return size >= 4 && head[0] == 0x28 && head[1] == 0xb5 && head[2] == 0x2f && head[3] == 0xfd;
}

// The blob's bytes, read forwards in large pieces; what the first read saw is the format's magic.
class BlobInput {
 public:
  BlobInput(std::unique_ptr<ByteSource> source, std::string path)
      : source_(std::move(source)), path_(std::move(path)) {}

  // More bytes when all given out were used; false at the end of the blob.
  absl::StatusOr<bool> Refill() {
    if (at_end_) return false;
    absl::StatusOr<size_t> n = source_->Read(buffer_.data(), buffer_.size());
    if (!n.ok()) return n.status();
    if (*n == 0) {
      at_end_ = true;
      return false;
    }
    next_ = buffer_.data();
    available_ = *n;
    return true;
  }

  std::vector<uint8_t> buffer_ = std::vector<uint8_t>(kInputBytes);
  uint8_t* next_ = nullptr;
  size_t available_ = 0;
  bool at_end_ = false;
  std::unique_ptr<ByteSource> source_;
  std::string path_;
};

// A file, socket or pipe read with read(2).
class FdSource : public ByteSource {
 public:
  FdSource(base::UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}

  absl::StatusOr<size_t> Read(uint8_t* buffer, size_t size) override {
    ssize_t n;
    do {
      n = ::read(fd_.Get(), buffer, size);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return base::ErrnoStatus(errno, "read " + path_);
    return static_cast<size_t>(n);
  }

 private:
  base::UniqueFd fd_;
  std::string path_;
};

class IsalGzipStream : public LayerStream {
 public:
  explicit IsalGzipStream(std::unique_ptr<BlobInput> input) : input_(std::move(input)) {
    StartMember();
  }

  absl::StatusOr<size_t> Read(char* buffer, size_t size) override {
    while (!done_) {
      if (input_->available_ == 0) {
        absl::StatusOr<bool> more = input_->Refill();
        if (!more.ok()) return more.status();
      }
      state_.next_in = input_->next_;
      state_.avail_in = static_cast<uint32_t>(input_->available_);
      state_.next_out = reinterpret_cast<uint8_t*>(buffer);
      state_.avail_out = static_cast<uint32_t>(std::min<size_t>(size, UINT32_MAX));
      uint32_t given = state_.avail_in;
      int result = isal_inflate(&state_);
      input_->next_ = state_.next_in;
      input_->available_ = state_.avail_in;
      size_t produced = std::min<size_t>(size, UINT32_MAX) - state_.avail_out;
      if (result < 0) return Failure(result);
      if (state_.block_state == ISAL_BLOCK_FINISH) {
        // One member ended, its CRC-32 and length checked. gzip allows several in a row
        // (pigz, concatenated files); bytes after the last that are not a member are padding,
        // ignored as gzip and libarchive do (the blob's own digest already covers them).
        if (input_->available_ == 0) {
          absl::StatusOr<bool> more = input_->Refill();
          if (!more.ok()) return more.status();
        }
        if (IsGzip(input_->next_, input_->available_)) {
          StartMember();
        } else {
          done_ = true;
        }
      } else if (produced == 0 && given == state_.avail_in && input_->at_end_) {
        return absl::DataLossError(
            absl::StrCat("layer ", input_->path_, ": the gzip stream is cut short"));
      }
      if (produced > 0) return produced;
    }
    return 0;
  }

  std::string Format() const override { return "gzip (isa-l)"; }

 private:
  void StartMember() {
    isal_inflate_init(&state_);
    state_.crc_flag = ISAL_GZIP;  // parse the header, check the trailer's CRC-32 and length
  }

  absl::Status Failure(int result) const {
    std::string where = absl::StrCat("layer ", input_->path_, ": ");
    switch (result) {
      case ISAL_INCORRECT_CHECKSUM:
        return absl::DataLossError(
            absl::StrCat(where, "gzip checksum or length does not match the data"));
      case ISAL_INVALID_WRAPPER:
        return absl::InvalidArgumentError(absl::StrCat(where, "not a gzip header"));
      default:
        return absl::DataLossError(
            absl::StrCat(where, "corrupt gzip data (isa-l inflate error ", result, ")"));
    }
  }

  std::unique_ptr<BlobInput> input_;
  inflate_state state_{};
  bool done_ = false;
};

class ZstdStream : public LayerStream {
 public:
  explicit ZstdStream(std::unique_ptr<BlobInput> input)
      : input_(std::move(input)), context_(ZSTD_createDCtx()) {}
  ~ZstdStream() override { ZSTD_freeDCtx(context_); }

  absl::StatusOr<size_t> Read(char* buffer, size_t size) override {
    for (;;) {
      if (input_->available_ == 0) {
        absl::StatusOr<bool> more = input_->Refill();
        if (!more.ok()) return more.status();
        if (!*more) {
          if (frame_open_) {
            return absl::DataLossError(
                absl::StrCat("layer ", input_->path_, ": the zstd stream is cut short"));
          }
          return 0;
        }
      }
      ZSTD_inBuffer in{input_->next_, input_->available_, 0};
      ZSTD_outBuffer out{buffer, size, 0};
      size_t result = ZSTD_decompressStream(context_, &out, &in);
      input_->next_ += in.pos;
      input_->available_ -= in.pos;
      if (ZSTD_isError(result)) {
        std::string text =
            absl::StrCat("layer ", input_->path_, ": zstd: ", ZSTD_getErrorName(result));
        return ZSTD_getErrorCode(result) == ZSTD_error_checksum_wrong
                   ? absl::DataLossError(text)
                   : absl::InvalidArgumentError(text);
      }
      frame_open_ = result != 0;  // 0: a frame ended (another may follow)
      if (out.pos > 0) return out.pos;
    }
  }

  std::string Format() const override { return "zstd"; }

 private:
  std::unique_ptr<BlobInput> input_;
  ZSTD_DCtx* context_;
  bool frame_open_ = false;
};

// Everything else through libarchive's filters: gzip with zlib, xz, bzip2, or no compression.
// It reads the blob through INPUT, starting with the bytes INPUT already holds.
class LibarchiveStream : public LayerStream {
 public:
  explicit LibarchiveStream(std::unique_ptr<BlobInput> input) : input_(std::move(input)) {}
  ~LibarchiveStream() override { archive_read_free(handle_); }

  absl::Status Open() {
    archive_read_support_filter_all(handle_);
    archive_read_support_format_raw(handle_);
    archive_entry* entry = nullptr;
    if (archive_read_open(handle_, this, nullptr, &LibarchiveStream::Feed, nullptr) != ARCHIVE_OK ||
        archive_read_next_header(handle_, &entry) != ARCHIVE_OK) {
      if (!failure_.ok()) return failure_;
      return absl::InvalidArgumentError(
          absl::StrCat("layer ", input_->path_, ": ", archive_error_string(handle_)));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<size_t> Read(char* buffer, size_t size) override {
    la_ssize_t n = archive_read_data(handle_, buffer, size);
    if (n < 0) {
      if (!failure_.ok()) return failure_;
      return absl::DataLossError(
          absl::StrCat("layer ", input_->path_, ": ", archive_error_string(handle_)));
    }
    return static_cast<size_t>(n);
  }

  std::string Format() const override {
    const char* name = archive_filter_name(handle_, 0);
    std::string filter = name == nullptr || std::string(name) == "none" ? "tar" : name;
    return filter == "gzip" ? "gzip (zlib)" : filter;
  }

 private:
  static la_ssize_t Feed(archive* reader, void* client, const void** data) {
    auto* self = static_cast<LibarchiveStream*>(client);
    BlobInput& input = *self->input_;
    if (input.available_ == 0) {
      absl::StatusOr<bool> more = input.Refill();
      if (!more.ok()) {
        self->failure_ = more.status();
        archive_set_error(reader, EIO, "%s", std::string(more.status().message()).c_str());
        return -1;
      }
      if (!*more) return 0;
    }
    *data = input.next_;
    size_t given = input.available_;
    input.available_ = 0;
    return static_cast<la_ssize_t>(given);
  }

  std::unique_ptr<BlobInput> input_;
  archive* handle_ = archive_read_new();
  absl::Status failure_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<LayerStream>> LayerStream::Open(const std::string& blob_path,
                                                               InflateEngine engine) {
  base::UniqueFd fd(::open(blob_path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return base::ErrnoStatus(errno, "open " + blob_path);
  ::posix_fadvise(fd.Get(), 0, 0, POSIX_FADV_SEQUENTIAL);
  return FromFd(std::move(fd), blob_path, engine);
}

absl::StatusOr<std::unique_ptr<LayerStream>> LayerStream::FromFd(base::UniqueFd fd,
                                                                 const std::string& name,
                                                                 InflateEngine engine) {
  return FromSource(ReadFromFd(std::move(fd), name), name, engine);
}

absl::StatusOr<std::unique_ptr<LayerStream>> LayerStream::FromSource(
    std::unique_ptr<ByteSource> source, const std::string& name, InflateEngine engine) {
  auto input = std::make_unique<BlobInput>(std::move(source), name);
  if (absl::StatusOr<bool> read = input->Refill(); !read.ok()) return read.status();
  if (IsZstd(input->next_, input->available_)) {
    return std::unique_ptr<LayerStream>(new ZstdStream(std::move(input)));
  }
  if (engine == InflateEngine::kIsal && IsGzip(input->next_, input->available_)) {
    return std::unique_ptr<LayerStream>(new IsalGzipStream(std::move(input)));
  }
  // libarchive reads from the start: the bytes already read are handed to it first.
  auto stream = std::make_unique<LibarchiveStream>(std::move(input));
  if (absl::Status opened = stream->Open(); !opened.ok()) return opened;
  return std::unique_ptr<LayerStream>(std::move(stream));
}

std::unique_ptr<ByteSource> ReadFromFd(base::UniqueFd fd, std::string path) {
  return std::make_unique<FdSource>(std::move(fd), std::move(path));
}

}  // namespace kapal::images
