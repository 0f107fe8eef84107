#include "snapshotter/mount.h"

#include <sys/mount.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/files.h"

namespace kapal::snapshotter {

MountCall ToMountCall(const Mount& mount) {
  MountCall call;
  std::vector<std::string> data;
  for (const std::string& option : mount.options) {
    if (option == "ro") {
      call.flags |= MS_RDONLY;
    } else if (option == "rbind") {
      call.flags |= MS_BIND | MS_REC;
    } else if (option == "bind") {
      call.flags |= MS_BIND;
    } else if (option == "rw") {
    } else {
      data.push_back(option);
    }
  }
  call.data = absl::StrJoin(data, ",");
  return call;
}

absl::StatusOr<ScopedMount> ScopedMount::Create(const std::vector<Mount>& mounts,
                                                const std::string& target) {
  if (mounts.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat("expected one mount, got ", mounts.size()));
  }
  const Mount& mount = mounts.front();
  MountCall call = ToMountCall(mount);
  // Page-size limit of mount(2)'s data: an image with very many layers would exceed it.
  if (call.data.size() >= 4096) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "mount options for ", target, " are ", call.data.size(), " bytes, over the 4095 allowed"));
  }
  bool bind = (call.flags & MS_BIND) != 0;
  unsigned long flags = call.flags;
  if (bind) flags &= ~MS_RDONLY;  // a read-only bind takes a remount
  if (::mount(mount.source.c_str(), target.c_str(), bind ? nullptr : mount.type.c_str(), flags,
              call.data.empty() ? nullptr : call.data.c_str()) != 0) {
    return base::ErrnoStatus(errno, absl::StrCat("mount ", mount.type, " on ", target));
  }
  ScopedMount scoped(target);
  if (bind && (call.flags & MS_RDONLY) != 0) {
    if (::mount(nullptr, target.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr) != 0) {
      return base::ErrnoStatus(errno, "remount read-only " + target);
    }
  }
  return scoped;
}

absl::Status ScopedMount::Unmount() {
  if (target_.empty()) return absl::OkStatus();
  if (::umount2(target_.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    return base::ErrnoStatus(errno, "umount " + target_);
  }
  target_.clear();
  return absl::OkStatus();
}

ScopedMount::~ScopedMount() { (void)Unmount(); }

}  // namespace kapal::snapshotter
