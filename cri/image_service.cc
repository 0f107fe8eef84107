#include "cri/image_service.h"

#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/files.h"
#include "cri/grpc_status.h"
#include "images/garbage.h"
#include "images/manifest.h"
#include "nlohmann/json.hpp"

namespace kapal::cri {

namespace {

void SetUsage(runtime::v1::FilesystemUsage* out, const std::string& mountpoint,
              const base::TreeUsage& usage) {
  out->set_timestamp(std::chrono::duration_cast<std::chrono::nanoseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count());
  out->mutable_fs_id()->set_mountpoint(mountpoint);
  out->mutable_used_bytes()->set_value(static_cast<uint64_t>(usage.bytes));
  out->mutable_inodes_used()->set_value(static_cast<uint64_t>(usage.inodes));
}

// A name:tag reference (no digest, not an id) removes only that tag.
bool IsTagOnly(const std::string& text, const images::ImageRecord& image) {
  if (absl::StartsWith(text, "sha256:") || absl::StartsWith(image.id.Hex(), text)) return false;
  absl::StatusOr<images::Reference> reference = images::ParseReference(text);
  return reference.ok() && !reference->digest;
}

}  // namespace

runtime::v1::Image ToCriImage(const images::ImageRecord& image) {
  runtime::v1::Image out;
  out.set_id(image.id.String());
  for (const std::string& tag : image.repo_tags) out.add_repo_tags(tag);
  for (const std::string& digest : image.repo_digests) out.add_repo_digests(digest);
  out.set_size(static_cast<uint64_t>(image.size));
  out.mutable_spec()->set_image(image.id.String());
  absl::StatusOr<images::ImageConfig> config = images::ParseImageConfig(image.config_json);
  if (config.ok() && !config->user.empty()) {
    // "1000", "1000:1000", "app" or "app:group": kubelet wants the user part only.
    std::string user = config->user.substr(0, config->user.find(':'));
    int64_t uid = 0;
    if (absl::SimpleAtoi(user, &uid)) {
      out.mutable_uid()->set_value(uid);
    } else {
      out.set_username(user);
    }
  }
  return out;
}

ImageService::ImageService(const Config& config, images::Puller& puller, images::ImageStore& images,
                           images::ContentStore& content, snapshotter::Snapshotter& snapshots,
                           metrics::Registry& metrics, base::Logger& logger)
    : config_(config),
      puller_(puller),
      images_(images),
      content_(content),
      snapshots_(snapshots),
      logger_(logger),
      pulls_(prometheus::BuildCounter()
                 .Name(metrics::Registry::Name("image_pulls_total"))
                 .Help("Image pulls by result (success, failure)")
                 .Register(metrics.Prometheus())) {}

grpc::Status ImageService::PullImage(grpc::ServerContext*,
                                     const runtime::v1::PullImageRequest* request,
                                     runtime::v1::PullImageResponse* response) {
  const std::string& reference = request->image().image();
  if (reference.empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "PullImage: image.image is empty");
  }
  images::Credentials credentials;
  credentials.username = request->auth().username();
  credentials.password = request->auth().password();
  credentials.identity_token = request->auth().identity_token();
  credentials.registry_token = request->auth().registry_token();
  if (absl::Status decoded = images::DecodeAuthField(request->auth().auth(), credentials);
      !decoded.ok()) {
    return ToGrpcStatus(decoded);
  }
  auto started = std::chrono::steady_clock::now();
  absl::StatusOr<images::ImageRecord> image = puller_.Pull(reference, credentials);
  pulls_.Add({{"result", image.ok() ? "success" : "failure"}}).Increment();
  if (!image.ok()) {
    logger_.Warn(image.status().message());
    return ToGrpcStatus(image.status());
  }
  logger_.Info("pulled ", reference, " as ", image->id.String(), " in ",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(),
               "s");
  response->set_image_ref(image->id.String());
  return grpc::Status::OK;
}

grpc::Status ImageService::ListImages(grpc::ServerContext*,
                                      const runtime::v1::ListImagesRequest* request,
                                      runtime::v1::ListImagesResponse* response) {
  const std::string& filter = request->filter().image().image();
  if (!filter.empty()) {
    absl::StatusOr<images::ImageRecord> image = images_.Find(filter);
    if (image.ok()) *response->add_images() = ToCriImage(*image);
    if (!image.ok() && !absl::IsNotFound(image.status())) return ToGrpcStatus(image.status());
    return grpc::Status::OK;
  }
  for (const images::ImageRecord& image : images_.List())
    *response->add_images() = ToCriImage(image);
  return grpc::Status::OK;
}

grpc::Status ImageService::ImageStatus(grpc::ServerContext*,
                                       const runtime::v1::ImageStatusRequest* request,
                                       runtime::v1::ImageStatusResponse* response) {
  absl::StatusOr<images::ImageRecord> image = images_.Find(request->image().image());
  // Kubelet asks before pulling: an unknown image is an empty answer, not an error.
  if (absl::IsNotFound(image.status())) return grpc::Status::OK;
  if (!image.ok()) return ToGrpcStatus(image.status());
  *response->mutable_image() = ToCriImage(*image);
  if (request->verbose()) {
    nlohmann::json config = nlohmann::json::parse(image->config_json, nullptr, false);
    nlohmann::json info = {{"chainID", image->top_chain_id.String()},
                           {"manifestDigest", image->manifest_digest.String()},
                           {"mediaType", image->media_type},
                           {"imageSpec", config.is_discarded() ? nlohmann::json() : config}};
    (*response->mutable_info())["info"] = info.dump();
  }
  return grpc::Status::OK;
}

grpc::Status ImageService::RemoveImage(grpc::ServerContext*,
                                       const runtime::v1::RemoveImageRequest* request,
                                       runtime::v1::RemoveImageResponse*) {
  const std::string& text = request->image().image();
  if (text.empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "RemoveImage: image.image is empty");
  }
  std::lock_guard lock(removal_mutex_);
  absl::StatusOr<images::ImageRecord> image = images_.Find(text);
  // Removing what is not there succeeds, as kubelet's image GC expects.
  if (absl::IsNotFound(image.status())) return grpc::Status::OK;
  if (!image.ok()) return ToGrpcStatus(image.status());
  if (IsTagOnly(text, *image) && image->repo_tags.size() > 1) {
    absl::StatusOr<images::Reference> reference = images::ParseReference(text);
    absl::StatusOr<int> remaining = images_.Untag(*reference);
    if (!remaining.ok()) return ToGrpcStatus(remaining.status());
    logger_.Info("untagged ", reference->Canonical(), "; ", image->id.String(), " keeps ",
                 *remaining, " tags");
    return grpc::Status::OK;
  }
  if (absl::Status removed = images_.Remove(image->id); !removed.ok()) return ToGrpcStatus(removed);
  logger_.Info("removed image ", image->id.String());
  return ToGrpcStatus(CollectGarbage(image->blobs));
}

absl::Status ImageService::CollectGarbage(const std::vector<images::Digest>& released_blobs) {
  for (const images::Digest& blob : images_.UnusedBlobs(released_blobs)) {
    if (absl::Status removed = content_.Remove(blob); !removed.ok()) return removed;
  }
  return images::RemoveUnusedSnapshots(images_, snapshots_);
}

grpc::Status ImageService::ImageFsInfo(grpc::ServerContext*, const runtime::v1::ImageFsInfoRequest*,
                                       runtime::v1::ImageFsInfoResponse* response) {
  // Kubelet asks every few seconds: images are counted from what the store recorded when each
  // blob and layer was written; only writable (container) snapshots change and are measured.
  absl::StatusOr<std::pair<int64_t, int64_t>> blobs = content_.Totals();
  if (!blobs.ok()) return ToGrpcStatus(blobs.status());
  absl::StatusOr<snapshotter::Usage> layers = snapshots_.CommittedUsage();
  if (!layers.ok()) return ToGrpcStatus(layers.status());
  base::TreeUsage images_usage{blobs->first + layers->bytes, blobs->second + layers->inodes};
  base::TreeUsage containers_usage;
  for (const snapshotter::Info& info : snapshots_.Walk()) {
    if (info.kind == snapshotter::Kind::kCommitted) continue;
    base::TreeUsage measured = base::MeasureTree(info.directory);
    containers_usage.bytes += measured.bytes;
    containers_usage.inodes += measured.inodes;
  }
  SetUsage(response->add_image_filesystems(), config_.root_dir, images_usage);
  SetUsage(response->add_container_filesystems(), config_.root_dir, containers_usage);
  return grpc::Status::OK;
}

}  // namespace kapal::cri
