#include "runtime/container_mounts.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "base/unique_fd.h"
#include "runtime/node_state.h"
#include "snapshotter/mount.h"

namespace kapal::runtime {

namespace {

constexpr char kRootfsDir[] = "/rootfs";
constexpr char kVolumesDir[] = "/mounts";  // idmapped volumes, by index in the config
constexpr char kImagesDir[] = "/images";   // image volumes, by index in the config
constexpr char kLayersDir[] = "/layers";   // idmapped layers while an overlay is mounted

absl::StatusOr<base::UniqueFd> OpenPodUserNamespace(const std::string& pod_dir) {
  std::string pin = pod_dir + "/user";
  base::UniqueFd userns(::open(pin.c_str(), O_RDONLY | O_CLOEXEC));
  if (!userns) return base::ErrnoStatus(errno, "open the pod's user namespace " + pin);
  return userns;
}

// A mount target of the same kind as SOURCE (a directory, or an empty file for a file).
absl::Status MakeTargetLike(const std::string& source, const std::string& target) {
  struct stat st {};
  if (::stat(source.c_str(), &st) != 0) return base::ErrnoStatus(errno, "stat " + source);
  if (S_ISDIR(st.st_mode)) return base::MakeDirectories(target, 0700);
  if (absl::Status made = base::MakeDirectories(target.substr(0, target.rfind('/')), 0700);
      !made.ok()) {
    return made;
  }
  base::UniqueFd file(::open(target.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
  if (!file) return base::ErrnoStatus(errno, "create " + target);
  return absl::OkStatus();
}

// An image volume's sub path: relative, inside the image, no symlink on the way (a link could
// lead the bind out of the image, onto the host).
absl::Status CheckSubPath(const std::string& root, const std::string& sub_path) {
  if (sub_path.empty()) return absl::OkStatus();
  if (sub_path[0] == '/') {
    return absl::InvalidArgumentError(
        absl::StrCat("image_sub_path \"", sub_path, "\" must be relative to the image's root"));
  }
  for (absl::string_view part : absl::StrSplit(sub_path, '/')) {
    if (part == "..") {
      return absl::InvalidArgumentError(
          absl::StrCat("image_sub_path \"", sub_path, "\" must not contain \"..\""));
    }
  }
  base::UniqueFd dir(::open(root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!dir) return base::ErrnoStatus(errno, "open " + root);
  open_how how{};
  how.flags = O_PATH | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  base::UniqueFd found(
      static_cast<int>(::syscall(SYS_openat2, dir.Get(), sub_path.c_str(), &how, sizeof how)));
  if (!found) {
    if (errno == ENOENT) {
      return absl::NotFoundError(
          absl::StrCat("image_sub_path \"", sub_path, "\" does not exist in the image"));
    }
    if (errno == ELOOP) {
      return absl::InvalidArgumentError(
          absl::StrCat("image_sub_path \"", sub_path, "\" goes through a symbolic link"));
    }
    return base::ErrnoStatus(errno, absl::StrCat("image_sub_path \"", sub_path, "\""));
  }
  return absl::OkStatus();
}

// Unmounts every entry of DIR (each a mount made here).
absl::Status UnmountEntries(const std::string& dir) {
  absl::StatusOr<std::vector<std::string>> entries = base::ListDirectory(dir);
  if (!entries.ok()) return absl::OkStatus();  // never made
  for (const std::string& name : *entries) {
    std::string path = absl::StrCat(dir, "/", name);
    if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
      return base::ErrnoStatus(errno, "umount " + path);
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status BundleMounts::MountRootfs(const BundleMountInputs& in,
                                       const std::vector<snapshotter::Mount>& rootfs) {
  std::string target = in.bundle + kRootfsDir;
  if (!in.pod_userns.has_value()) {
    absl::StatusOr<snapshotter::ScopedMount> mounted =
        snapshotter::ScopedMount::Create(rootfs, target);
    if (!mounted.ok()) return mounted.status();
    mounted->Release();  // stays mounted for the container's life; UnmountBundle unmounts
    return absl::OkStatus();
  }
  absl::StatusOr<base::UniqueFd> userns = OpenPodUserNamespace(in.pod_dir);
  if (!userns.ok()) return userns.status();
  // The container's root (uid 0 inside) owns / as on any root filesystem; a mapping without
  // 0 leaves it to the host's root.
  uint32_t root_uid = HostIdOf(in.pod_userns->uids, 0).value_or(0);
  uint32_t root_gid = HostIdOf(in.pod_userns->gids, 0).value_or(0);
  return MountIdmappedRootfs(rootfs, target, userns->Get(), in.bundle + kLayersDir, root_uid,
                             root_gid);
}

absl::Status BundleMounts::MountImageVolume(const BundleMountInputs& in,
                                            const runtime::v1::Mount& mount, int index,
                                            const std::string& target) {
  absl::StatusOr<images::ImageRecord> image = images_.Find(mount.image().image());
  if (absl::IsNotFound(image.status())) {
    return absl::NotFoundError(absl::StrCat("image volume ", mount.container_path(), ": image \"",
                                            mount.image().image(), "\" not found; pull it first"));
  }
  if (!image.ok()) return image.status();
  // The mount point first: UnmountBundle looks for image volume snapshots only where it is.
  if (absl::Status made = base::MakeDirectories(target, 0700); !made.ok()) return made;
  std::string key = absl::StrCat(in.snapshot_key, kImageVolumeSnapshotInfix, index);
  absl::StatusOr<std::vector<snapshotter::Mount>> view =
      snapshots_.View(key, image->top_chain_id.String());
  if (!view.ok()) return view.status();
  if (in.pod_userns.has_value()) {
    absl::StatusOr<base::UniqueFd> userns = OpenPodUserNamespace(in.pod_dir);
    if (!userns.ok()) return userns.status();
    return MountIdmappedRootfs(*view, target, userns->Get(),
                               absl::StrCat(in.bundle, kLayersDir, "-image-", index), 0, 0);
  }
  absl::StatusOr<snapshotter::ScopedMount> mounted =
      snapshotter::ScopedMount::Create(*view, target);
  if (!mounted.ok()) return mounted.status();
  mounted->Release();
  return absl::OkStatus();
}

absl::StatusOr<runtime::v1::ContainerConfig> BundleMounts::MountVolumes(
    const BundleMountInputs& in, const runtime::v1::ContainerConfig& config) {
  runtime::v1::ContainerConfig out = config;
  for (int i = 0; i < config.mounts_size(); ++i) {
    const runtime::v1::Mount& mount = config.mounts(i);
    runtime::v1::Mount& rewritten = *out.mutable_mounts(i);
    if (!mount.image().image().empty()) {
      std::string target = absl::StrCat(in.bundle, kImagesDir, "/", i);
      if (absl::Status mounted = MountImageVolume(in, mount, i, target); !mounted.ok()) {
        return Annotate(mounted, "image volume " + mount.container_path());
      }
      if (absl::Status checked = CheckSubPath(target, mount.image_sub_path()); !checked.ok()) {
        return checked;
      }
      rewritten.set_host_path(mount.image_sub_path().empty()
                                  ? target
                                  : absl::StrCat(target, "/", mount.image_sub_path()));
      // An image volume is read-only whatever the request says (KEP-4639).
      rewritten.set_readonly(true);
      rewritten.clear_image();
      rewritten.clear_image_sub_path();
      continue;
    }
    absl::StatusOr<std::optional<IdMappings>> mappings = MountIdMappings(mount);
    if (!mappings.ok()) return mappings.status();
    if (!mappings->has_value()) continue;
    struct stat st {};
    if (::stat(mount.host_path().c_str(), &st) != 0) {
      if (errno != ENOENT) return base::ErrnoStatus(errno, "mount source " + mount.host_path());
      // kubelet expects a missing hostPath directory to be created.
      if (absl::Status made = base::MakeDirectories(mount.host_path(), 0755); !made.ok()) {
        return made;
      }
    }
    std::string target = absl::StrCat(in.bundle, kVolumesDir, "/", i);
    if (absl::Status made = MakeTargetLike(mount.host_path(), target); !made.ok()) return made;
    absl::StatusOr<base::UniqueFd> userns =
        in.pod_userns.has_value() && **mappings == *in.pod_userns
            ? OpenPodUserNamespace(in.pod_dir)
            : OpenUserNamespace(in.shim_binary, in.bundle, **mappings);
    if (!userns.ok()) return userns.status();
    if (absl::Status bound = IdmappedBind(mount.host_path(), target, userns->Get()); !bound.ok()) {
      return Annotate(bound, "mount " + mount.container_path());
    }
    rewritten.set_host_path(target);
    rewritten.clear_uidmappings();
    rewritten.clear_gidmappings();
  }
  return out;
}

absl::Status UnmountBundle(snapshotter::Snapshotter& snapshots, const std::string& bundle,
                           const std::string& snapshot_key) {
  // Only a container with image volumes has their snapshots (a walk of every snapshot is not
  // paid for each removal).
  bool image_volumes = ::access((bundle + kImagesDir).c_str(), F_OK) == 0;
  for (const char* dir : {kVolumesDir, kImagesDir}) {
    if (absl::Status unmounted = UnmountEntries(bundle + dir); !unmounted.ok()) return unmounted;
  }
  std::string rootfs = bundle + kRootfsDir;
  if (::umount2(rootfs.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    return base::ErrnoStatus(errno, "umount " + rootfs);
  }
  if (image_volumes) {
    std::string views = snapshot_key + kImageVolumeSnapshotInfix;
    for (const snapshotter::Info& info : snapshots.Walk()) {
      if (!absl::StartsWith(info.key, views)) continue;
      absl::Status removed = snapshots.Remove(info.key);
      if (!removed.ok() && !absl::IsNotFound(removed)) return removed;
    }
  }
  // The mount points go last: the image volumes' one says that their snapshots may remain.
  for (const char* dir : {kVolumesDir, kImagesDir}) {
    if (absl::Status removed = base::RemoveTree(bundle + dir); !removed.ok()) return removed;
  }
  return absl::OkStatus();
}

}  // namespace kapal::runtime
