#include "builder/layer_diff.h"

#include <isa-l/igzip_lib.h>
#include <sys/stat.h>

#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "images/decompress.h"
#include "images/tree_archive.h"

namespace kapal::builder {

namespace {

constexpr char kLayerMediaType[] = "application/vnd.oci.image.layer.v1.tar+gzip";
constexpr size_t kBufferSize = 1 << 20;

// The tar stream's sink: hashes the uncompressed bytes (the diff id), gzips them with ISA-L and
// hands the result to the blob writer.
class GzipBlobSink {
 public:
  explicit GzipBlobSink(images::BlobWriter& writer)
      : writer_(writer),
        hasher_(*images::Hasher::ForAlgorithm("sha256")),
        level_buffer_(ISAL_DEF_LVL1_DEFAULT),
        out_(kBufferSize) {
    isal_deflate_init(&stream_);
    stream_.level = 1;
    stream_.level_buf = level_buffer_.data();
    stream_.level_buf_size = static_cast<uint32_t>(level_buffer_.size());
    stream_.gzip_flag = IGZIP_GZIP;
  }

  absl::Status Write(const void* data, size_t size) {
    hasher_.Update(data, size);
    uncompressed_ += static_cast<int64_t>(size);
    return Deflate(static_cast<const uint8_t*>(data), size, /*end=*/false);
  }

  absl::Status Finish() { return Deflate(nullptr, 0, /*end=*/true); }
  images::Digest DiffId() { return hasher_.Finish(); }
  int64_t Uncompressed() const { return uncompressed_; }

 private:
  absl::Status Deflate(const uint8_t* data, size_t size, bool end) {
    stream_.next_in = const_cast<uint8_t*>(data);
    stream_.avail_in = static_cast<uint32_t>(size);
    stream_.end_of_stream = end ? 1 : 0;
    stream_.flush = NO_FLUSH;
    do {
      stream_.next_out = out_.data();
      stream_.avail_out = static_cast<uint32_t>(out_.size());
      if (int rc = isal_deflate(&stream_); rc != COMP_OK) {
        return absl::InternalError(absl::StrCat("gzip compression failed (isal_deflate ", rc, ")"));
      }
      size_t produced = out_.size() - stream_.avail_out;
      if (produced > 0) {
        if (absl::Status written =
                writer_.Write(reinterpret_cast<const char*>(out_.data()), produced);
            !written.ok()) {
          return written;
        }
      }
    } while (stream_.avail_in > 0 || (end && stream_.internal_state.state != ZSTATE_END));
    return absl::OkStatus();
  }

  images::BlobWriter& writer_;
  images::Hasher hasher_;
  std::vector<uint8_t> level_buffer_;
  std::vector<uint8_t> out_;
  isal_zstream stream_{};
  int64_t uncompressed_ = 0;
};

// The gzip stream ended and the blob committed: the layer's descriptor and digests.
absl::StatusOr<LayerBlob> FinishLayer(GzipBlobSink& sink, images::BlobWriter& writer,
                                      int64_t entries) {
  if (absl::Status finished = sink.Finish(); !finished.ok()) return finished;
  absl::StatusOr<int64_t> size = writer.Commit();
  if (!size.ok()) return size.status();
  LayerBlob layer;
  layer.descriptor.media_type = kLayerMediaType;
  layer.descriptor.digest = writer.BlobDigest();
  layer.descriptor.size = *size;
  layer.uncompressed_bytes = sink.Uncompressed();
  layer.diff_id = sink.DiffId();
  layer.entries = entries;
  return layer;
}

}  // namespace

const std::set<std::string>& RuntimeMountPoints() {
  static const std::set<std::string> kMountPoints = {
      "proc",       "sys",           "dev",       "dev/pts",      "dev/shm",
      "dev/mqueue", "sys/fs/cgroup", "etc/hosts", "etc/hostname", "etc/resolv.conf"};
  return kMountPoints;
}

absl::StatusOr<LayerBlob> WriteLayerFromUpperDir(const std::string& upper,
                                                 images::ContentStore& content,
                                                 const std::set<std::string>& mount_points) {
  absl::StatusOr<std::unique_ptr<images::BlobWriter>> writer =
      content.WriterForUnknown(kLayerMediaType);
  if (!writer.ok()) return writer.status();
  GzipBlobSink sink(**writer);
  images::TreeArchiveOptions options;
  options.overlay_upper = true;
  options.skip_when_empty = mount_points;
  absl::StatusOr<int64_t> entries = images::WriteTreeArchive(
      upper, options, [&sink](const void* data, size_t size) { return sink.Write(data, size); });
  if (!entries.ok()) return entries.status();
  return FinishLayer(sink, **writer, *entries);
}

absl::StatusOr<LayerBlob> WriteLayerFromTar(const std::string& tar_path,
                                            images::ContentStore& content) {
  absl::StatusOr<std::unique_ptr<images::LayerStream>> stream =
      images::LayerStream::Open(tar_path, images::InflateEngine::kIsal);
  if (!stream.ok()) return stream.status();
  absl::StatusOr<std::unique_ptr<images::BlobWriter>> writer =
      content.WriterForUnknown(kLayerMediaType);
  if (!writer.ok()) return writer.status();
  GzipBlobSink sink(**writer);
  std::vector<char> buffer(kBufferSize);
  for (;;) {
    absl::StatusOr<size_t> n = (*stream)->Read(buffer.data(), buffer.size());
    if (!n.ok()) return n.status();
    if (*n == 0) break;
    if (absl::Status written = sink.Write(buffer.data(), *n); !written.ok()) return written;
  }
  return FinishLayer(sink, **writer, /*entries=*/0);
}

}  // namespace kapal::builder
