#include "snapshotter/mount.h"

#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/files.h"

namespace kapal::snapshotter {

namespace {

constexpr size_t kMaxMountData = 4095;  // mount(2) copies at most one page of options

// The directory that every path in an overlay's lowerdir/upperdir/workdir options lies under.
std::string CommonDirectory(const std::vector<std::string>& paths) {
  if (paths.empty()) return "";
  std::string common = paths.front().substr(0, paths.front().rfind('/'));
  for (const std::string& path : paths) {
    while (!common.empty() && path.compare(0, common.size() + 1, common + "/") != 0) {
      common = common.substr(0, common.rfind('/'));
    }
  }
  return common;
}

// Rewrites DATA's directory lists relative to the common directory of all of them; "" when
// there is none worth using.
std::pair<std::string, std::string> RelativeOverlayData(const std::string& data) {
  std::vector<std::string> options = absl::StrSplit(data, ',');
  std::vector<std::string> paths;
  for (const std::string& option : options) {
    size_t eq = option.find('=');
    if (eq == std::string::npos) continue;
    std::string key = option.substr(0, eq);
    if (key != "lowerdir" && key != "upperdir" && key != "workdir") continue;
    for (absl::string_view path : absl::StrSplit(option.substr(eq + 1), ':'))
      paths.emplace_back(path);
  }
  std::string common = CommonDirectory(paths);
  if (common.empty()) return {"", ""};
  for (std::string& option : options) {
    size_t eq = option.find('=');
    if (eq == std::string::npos) continue;
    std::string key = option.substr(0, eq);
    if (key != "lowerdir" && key != "upperdir" && key != "workdir") continue;
    std::vector<std::string> relative;
    for (absl::string_view path : absl::StrSplit(option.substr(eq + 1), ':')) {
      relative.emplace_back(path.substr(common.size() + 1));
    }
    option = absl::StrCat(key, "=", absl::StrJoin(relative, ":"));
  }
  return {common, absl::StrJoin(options, ",")};
}

// mount(2) from a child whose working directory is DIRECTORY, so that DATA may name the layer
// directories relative to it: an image with hundreds of layers then fits in one page, as
// containerd does it. The child shares the mount namespace, so the mount is the caller's.
absl::Status MountFrom(const std::string& directory, const std::string& type,
                       const std::string& target, unsigned long flags, const std::string& data) {
  pid_t pid = ::fork();
  if (pid < 0) return base::ErrnoStatus(errno, "fork");
  if (pid == 0) {
    if (::chdir(directory.c_str()) != 0) _exit(errno);
    if (::mount(type.c_str(), target.c_str(), type.c_str(), flags, data.c_str()) != 0) _exit(errno);
    _exit(0);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status)) return absl::InternalError("mount helper died");
  if (WEXITSTATUS(status) != 0) {
    return base::ErrnoStatus(WEXITSTATUS(status), absl::StrCat("mount ", type, " on ", target));
  }
  return absl::OkStatus();
}

}  // namespace

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
  bool bind = (call.flags & MS_BIND) != 0;
  if (!bind && call.data.size() > kMaxMountData) {
    auto [directory, relative] = RelativeOverlayData(call.data);
    if (directory.empty() || relative.size() > kMaxMountData) {
      return absl::ResourceExhaustedError(absl::StrCat("mount options for ", target, " are ",
                                                       call.data.size(), " bytes, over the ",
                                                       kMaxMountData, " allowed"));
    }
    if (absl::Status mounted = MountFrom(directory, mount.type, target, call.flags, relative);
        !mounted.ok()) {
      return mounted;
    }
    return ScopedMount(target);
  }
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
