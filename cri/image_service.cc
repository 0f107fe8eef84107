#include "cri/image_service.h"

#include <chrono>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/files.h"
#include "cri/grpc_status.h"
#include "cri/list_stream.h"
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
  absl::StatusOr<images::ImageRecord> image = images_.Pull(reference, credentials);
  if (!image.ok()) return ToGrpcStatus(image.status());
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

grpc::Status ImageService::StreamImages(
    grpc::ServerContext* context, const runtime::v1::StreamImagesRequest* request,
    grpc::ServerWriter<runtime::v1::StreamImagesResponse>* writer) {
  runtime::v1::ListImagesRequest list;
  *list.mutable_filter() = request->filter();
  runtime::v1::ListImagesResponse listed;
  if (grpc::Status status = ListImages(context, &list, &listed); !status.ok()) return status;
  return SendInChunks<runtime::v1::StreamImagesResponse>(
      writer, *listed.mutable_images(),
      [](runtime::v1::StreamImagesResponse& r) { return r.mutable_images(); });
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
  absl::Status removed = images_.Remove(text);
  // Removing what is not there succeeds, as kubelet's image GC expects.
  if (absl::IsNotFound(removed)) return grpc::Status::OK;
  return ToGrpcStatus(removed);
}

grpc::Status ImageService::ImageFsInfo(grpc::ServerContext*, const runtime::v1::ImageFsInfoRequest*,
                                       runtime::v1::ImageFsInfoResponse* response) {
  absl::StatusOr<runtime::FilesystemUsage> usage = images_.Usage();
  if (!usage.ok()) return ToGrpcStatus(usage.status());
  SetUsage(response->add_image_filesystems(), usage->mountpoint, usage->images);
  SetUsage(response->add_container_filesystems(), usage->containers_mountpoint, usage->containers);
  return grpc::Status::OK;
}

}  // namespace kapal::cri
