#include "images/pusher.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "images/manifest.h"
#include "images/reference.h"

namespace kapal::images {

absl::StatusOr<PushResult> Pusher::Push(const ImageRecord& image, const std::string& reference,
                                        const Credentials& credentials,
                                        const PushCallback& progress) {
  absl::StatusOr<Reference> target = ParseReference(reference);
  if (!target.ok()) return target.status();
  if (target->tag.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("push ", reference, ": name a tag to push to (NAME:TAG)"));
  }
  absl::StatusOr<std::string> body = content_.ReadAll(image.manifest_digest);
  if (!body.ok()) return body.status();
  if (IsIndex(image.media_type, *body)) {
    return absl::UnimplementedError(
        absl::StrCat("push ", reference,
                     ": the image is an index; kapal pushes image manifests "
                     "only (yet)"));
  }
  absl::StatusOr<ImageManifest> manifest = ParseManifest(*body);
  if (!manifest.ok()) return manifest.status();
  Credentials used = credentials.Empty() ? hosts_.CredentialsFor(target->domain) : credentials;
  RegistryClient client(hosts_.OriginFor(target->domain), used);
  // A repository of the same registry the image came from, to mount blobs from.
  std::string mount_from;
  for (const std::string& pulled : image.repo_digests) {
    absl::StatusOr<Reference> source = ParseReference(pulled);
    if (source.ok() && source->domain == target->domain && source->path != target->path) {
      mount_from = source->path;
      break;
    }
  }
  std::vector<Descriptor> blobs = manifest->layers;
  blobs.push_back(manifest->config);
  auto report = [&](PushProgress::Phase phase, const Descriptor& blob, int64_t done) {
    if (progress) progress({phase, blob.digest.String(), done, blob.size});
  };
  for (const Descriptor& blob : blobs) report(PushProgress::Phase::kPreparing, blob, 0);
  for (const Descriptor& blob : blobs) {
    if (!content_.Has(blob.digest)) {
      return absl::NotFoundError(absl::StrCat("push ", reference, ": blob ", blob.digest.String(),
                                              " is not in the content store"));
    }
    absl::StatusOr<bool> there = client.HasBlob(target->path, blob.digest);
    if (!there.ok()) return there.status();
    if (*there) {
      report(PushProgress::Phase::kExists, blob, blob.size);
      continue;
    }
    absl::StatusOr<int64_t> size = content_.SizeOf(blob.digest);
    if (!size.ok()) return size.status();
    absl::StatusOr<bool> mounted =
        client.PushBlob(target->path, blob.digest, content_.PathOf(blob.digest), *size, mount_from,
                        [&](int64_t done) { report(PushProgress::Phase::kPushing, blob, done); });
    if (!mounted.ok()) return mounted.status();
    report(*mounted ? PushProgress::Phase::kMounted : PushProgress::Phase::kPushed, blob,
           blob.size);
  }
  if (absl::Status put = client.PushManifest(target->path, target->tag, image.media_type, *body);
      !put.ok()) {
    return put;
  }
  return PushResult{target->tag, image.manifest_digest, static_cast<int64_t>(body->size())};
}

}  // namespace kapal::images
