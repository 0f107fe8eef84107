#pragma once

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "images/digest.h"

namespace kapal::images {

inline constexpr const char kDockerHub[] = "docker.io";

// An image reference, normalized as Docker and containerd do it:
//   busybox                  -> docker.io/library/busybox:latest
//   user/app:1               -> docker.io/user/app:1
//   127.0.0.1:5000/a/b@sha256:...  (kept as given, no tag added)
//   name:tag@sha256:...      -> both kept; the digest decides what is pulled
struct Reference {
  std::string domain;  // "docker.io", "registry.k8s.io", "127.0.0.1:5000"
  std::string path;    // "library/busybox"
  std::string tag;     // empty when only a digest was given
  std::optional<Digest> digest;

  // domain/path
  std::string Name() const { return domain + "/" + path; }
  // The full normalized form: domain/path[:tag][@digest].
  std::string String() const;
  // Name()@digest when there is a digest, else Name():tag: what identifies the content pulled.
  std::string Canonical() const;
  bool operator==(const Reference&) const = default;
};

// Parses and normalizes TEXT. A bad reference is INVALID_ARGUMENT saying what is wrong
// ("repository name must be lowercase", "invalid tag", ...).
absl::StatusOr<Reference> ParseReference(absl::string_view text);

}  // namespace kapal::images
