#include "runtime/userns.h"

#include <fcntl.h>
#include <linux/mount.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "runtime/oci_runtime.h"
#include "snapshotter/mount.h"

namespace kapal::runtime {

namespace {

using runtime::v1::IDMapping;

absl::StatusOr<std::vector<IdMap>> CheckedMaps(
    const google::protobuf::RepeatedPtrField<IDMapping>& given, const std::string& what) {
  std::vector<IdMap> maps;
  for (const IDMapping& mapping : given) {
    IdMap map{mapping.container_id(), mapping.host_id(), mapping.length()};
    if (map.length == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " mapping ", map.container_id, ":", map.host_id, " has length 0"));
    }
    if (uint64_t{map.container_id} + map.length > (uint64_t{1} << 32) ||
        uint64_t{map.host_id} + map.length > (uint64_t{1} << 32)) {
      return absl::InvalidArgumentError(absl::StrCat(what, " mapping ", map.container_id, ":",
                                                     map.host_id, ":", map.length,
                                                     " goes past the 32-bit id space"));
    }
    maps.push_back(map);
  }
  // The kernel refuses overlapping ranges on either side.
  for (size_t i = 0; i < maps.size(); ++i) {
    for (size_t j = i + 1; j < maps.size(); ++j) {
      auto overlap = [](uint32_t a, uint32_t b, uint32_t a_length, uint32_t b_length) {
        return uint64_t{a} < uint64_t{b} + b_length && uint64_t{b} < uint64_t{a} + a_length;
      };
      if (overlap(maps[i].container_id, maps[j].container_id, maps[i].length, maps[j].length) ||
          overlap(maps[i].host_id, maps[j].host_id, maps[i].length, maps[j].length)) {
        return absl::InvalidArgumentError(absl::StrCat(what, " mappings overlap"));
      }
    }
  }
  if (maps.size() > 340) {  // the kernel's limit of ranges per map
    return absl::InvalidArgumentError(absl::StrCat("more than 340 ", what, " mappings"));
  }
  return maps;
}

absl::StatusOr<IdMappings> CheckedMappings(
    const google::protobuf::RepeatedPtrField<IDMapping>& uids,
    const google::protobuf::RepeatedPtrField<IDMapping>& gids, const std::string& what) {
  absl::StatusOr<std::vector<IdMap>> checked_uids = CheckedMaps(uids, what + "uid");
  if (!checked_uids.ok()) return checked_uids.status();
  absl::StatusOr<std::vector<IdMap>> checked_gids = CheckedMaps(gids, what + "gid");
  if (!checked_gids.ok()) return checked_gids.status();
  return IdMappings{std::move(*checked_uids), std::move(*checked_gids)};
}

// The comma-joined ranges kapal-shim --namespaces takes on its command line
// ("CONTAINER_ID HOST_ID LENGTH,...", one /proc/PID/uid_map line each).
std::string MapArgument(const std::vector<IdMap>& maps) {
  std::vector<std::string> ranges;
  for (const IdMap& map : maps) {
    ranges.push_back(absl::StrCat(map.container_id, " ", map.host_id, " ", map.length));
  }
  return absl::StrJoin(ranges, ",");
}

int OpenTree(const std::string& path, unsigned flags) {
  return static_cast<int>(::syscall(SYS_open_tree, AT_FDCWD, path.c_str(), flags));
}

}  // namespace

absl::StatusOr<std::optional<IdMappings>> PodUserNamespace(
    const runtime::v1::PodSandboxConfig& config) {
  const auto& options = config.linux().security_context().namespace_options();
  if (!options.has_userns_options()) return std::nullopt;
  const runtime::v1::UserNamespace& userns = options.userns_options();
  switch (userns.mode()) {
    case runtime::v1::NODE:
      if (!userns.uids().empty() || !userns.gids().empty()) {
        return absl::InvalidArgumentError(
            "user namespace mode NODE (the host's) takes no uid or gid mappings");
      }
      return std::nullopt;
    case runtime::v1::POD:
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("user namespace mode ", runtime::v1::NamespaceMode_Name(userns.mode()),
                       " is not supported: a user namespace is the pod's (POD) or the host's "
                       "(NODE)"));
  }
  if (userns.uids().empty() || userns.gids().empty()) {
    return absl::InvalidArgumentError("user namespace mode POD needs both uid and gid mappings");
  }
  absl::StatusOr<IdMappings> mappings = CheckedMappings(userns.uids(), userns.gids(), "");
  if (!mappings.ok()) return mappings.status();
  // The pod's processes start as root inside (runc, the infra process); an unmapped root could
  // own nothing, as containerd and CRI-O refuse it too.
  if (!HostIdOf(mappings->uids, 0).has_value() || !HostIdOf(mappings->gids, 0).has_value()) {
    return absl::InvalidArgumentError(
        "user namespace mappings must map container id 0 (uid and gid)");
  }
  return *mappings;
}

absl::StatusOr<std::optional<IdMappings>> MountIdMappings(const runtime::v1::Mount& mount) {
  if (mount.uidmappings().empty() && mount.gidmappings().empty()) return std::nullopt;
  if (mount.uidmappings().empty() || mount.gidmappings().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("mount ", mount.container_path(),
                                                   " needs both uid and gid mappings, or neither"));
  }
  absl::StatusOr<IdMappings> mappings =
      CheckedMappings(mount.uidmappings(), mount.gidmappings(), "mount ");
  if (!mappings.ok()) return mappings.status();
  return *mappings;
}

std::optional<uint32_t> HostIdOf(const std::vector<IdMap>& maps, uint32_t id) {
  for (const IdMap& map : maps) {
    if (id >= map.container_id && uint64_t{id} < uint64_t{map.container_id} + map.length) {
      return map.host_id + (id - map.container_id);
    }
  }
  return std::nullopt;
}

absl::Status PinUserNamespaces(const std::string& shim_binary, const std::string& dir,
                               const IdMappings& mappings, const OwnedNamespaces& owned) {
  std::vector<std::string> argv = {shim_binary, "--namespaces", dir, MapArgument(mappings.uids),
                                   MapArgument(mappings.gids)};
  if (owned.network) argv.push_back("net");
  if (owned.ipc) argv.push_back("ipc");
  if (owned.uts) {
    argv.push_back("uts");
    if (!owned.hostname.empty()) argv.push_back("hostname=" + owned.hostname);
  }
  absl::StatusOr<std::string> line = RunShimForReport(argv);
  if (!line.ok()) return line.status();
  if (*line == "ok") return absl::OkStatus();
  if (absl::StartsWith(*line, "error ")) {
    return absl::FailedPreconditionError(
        absl::StrCat("make the pod's user namespace: ", line->substr(6)));
  }
  return absl::InternalError(absl::StrCat("kapal-shim --namespaces reported \"", *line, "\""));
}

absl::StatusOr<base::UniqueFd> OpenUserNamespace(const std::string& shim_binary,
                                                 const std::string& scratch_dir,
                                                 const IdMappings& mappings) {
  if (absl::Status pinned = PinUserNamespaces(shim_binary, scratch_dir, mappings, {});
      !pinned.ok()) {
    return pinned;
  }
  std::string pin = scratch_dir + "/user";
  base::UniqueFd userns(::open(pin.c_str(), O_RDONLY | O_CLOEXEC));
  int saved = errno;
  ::umount2(pin.c_str(), MNT_DETACH);
  ::unlink(pin.c_str());
  if (!userns) return base::ErrnoStatus(saved, "open " + pin);
  return userns;
}

absl::Status IdmappedBind(const std::string& source, const std::string& target, int userns_fd) {
  base::UniqueFd tree(OpenTree(source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE));
  if (!tree) return base::ErrnoStatus(errno, "clone the mount of " + source);
  mount_attr attr{};
  attr.attr_set = MOUNT_ATTR_IDMAP;
  attr.userns_fd = static_cast<uint64_t>(userns_fd);
  if (::syscall(SYS_mount_setattr, tree.Get(), "", AT_EMPTY_PATH | AT_RECURSIVE, &attr,
                sizeof attr) != 0) {
    int error = errno;
    if (error == EINVAL || error == EOPNOTSUPP || error == EPERM) {
      return absl::FailedPreconditionError(
          absl::StrCat("idmapped mount of ", source, ": ", std::strerror(error),
                       " (its filesystem, or a mount below it, cannot be idmapped on this "
                       "kernel)"));
    }
    return base::ErrnoStatus(error, "idmap the mount of " + source);
  }
  if (::syscall(SYS_move_mount, tree.Get(), "", AT_FDCWD, target.c_str(),
                MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    return base::ErrnoStatus(errno, absl::StrCat("mount the idmapped ", source, " on ", target));
  }
  return absl::OkStatus();
}

absl::Status MountIdmappedRootfs(const std::vector<snapshotter::Mount>& mounts,
                                 const std::string& target, int userns_fd,
                                 const std::string& scratch_dir, uint32_t root_uid,
                                 uint32_t root_gid) {
  if (mounts.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat("expected one mount, got ", mounts.size()));
  }
  snapshotter::Mount mount = mounts.front();
  if (mount.type != "overlay") {
    // The native snapshotter's full copy: the whole tree idmapped.
    return IdmappedBind(mount.source, target, userns_fd);
  }
  std::vector<std::string> layer_mounts;
  auto unmount_layers = [&] {
    for (const std::string& layer : layer_mounts) ::umount2(layer.c_str(), MNT_DETACH);
    (void)base::RemoveTree(scratch_dir);
  };
  if (absl::Status made = base::MakeDirectories(scratch_dir, 0700); !made.ok()) return made;
  std::string upper;
  for (std::string& option : mount.options) {
    if (absl::StartsWith(option, "upperdir=")) upper = option.substr(9);
    if (!absl::StartsWith(option, "lowerdir=")) continue;
    std::vector<std::string> idmapped;
    for (absl::string_view lower : absl::StrSplit(option.substr(9), ':')) {
      std::string layer = absl::StrCat(scratch_dir, "/", idmapped.size());
      if (absl::Status made = base::MakeDirectories(layer, 0700); !made.ok()) {
        unmount_layers();
        return made;
      }
      if (absl::Status bound = IdmappedBind(std::string(lower), layer, userns_fd); !bound.ok()) {
        unmount_layers();
        return bound;
      }
      layer_mounts.push_back(layer);
      idmapped.push_back(layer);
    }
    option = "lowerdir=" + absl::StrJoin(idmapped, ":");
  }
  // The upper layer is not idmapped (overlayfs makes its work directory with the mounter's
  // ids, which an idmapped upper could not map); only its root changes owner, once, so that
  // the container's root owns / as it would on a plain root filesystem. Copied-up and new files
  // get the container's host ids.
  if (!upper.empty() && ::chown(upper.c_str(), root_uid, root_gid) != 0) {
    int error = errno;
    unmount_layers();
    return base::ErrnoStatus(error, "chown " + upper);
  }
  absl::StatusOr<snapshotter::ScopedMount> rootfs =
      snapshotter::ScopedMount::Create({mount}, target);
  // The overlay holds the idmapped layers now; their own mounts are not needed.
  unmount_layers();
  if (!rootfs.ok()) return rootfs.status();
  rootfs->Release();
  return absl::OkStatus();
}

absl::Status CheckSearchableByOthers(const std::string& path) {
  std::string walked;
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    absl::StrAppend(&walked, "/", part);
    struct stat st {};
    if (::stat(walked.c_str(), &st) != 0) return base::ErrnoStatus(errno, "stat " + walked);
    if ((st.st_mode & S_IXOTH) == 0) {
      return absl::FailedPreconditionError(absl::StrCat(
          walked, " has mode ", absl::StrFormat("%04o", st.st_mode & 07777),
          ": a pod in a user namespace cannot reach its containers' root filesystems below it; "
          "make it searchable by others (chmod o+x, as kapald's own state dir is 0711)"));
    }
  }
  return absl::OkStatus();
}

bool IdmappedMountsSupported(const std::string& shim_binary, const std::string& dir) {
  absl::StatusOr<base::TempDir> scratch = base::TempDir::Create("idmap-probe", dir);
  if (!scratch.ok()) return false;
  IdMappings mappings{{{0, 65536, 65536}}, {{0, 65536, 65536}}};
  absl::StatusOr<base::UniqueFd> userns = OpenUserNamespace(shim_binary, scratch->Path(), mappings);
  if (!userns.ok()) return false;
  std::string lower = scratch->Join("lower"), layer = scratch->Join("layer");
  std::string upper = scratch->Join("upper"), work = scratch->Join("work");
  std::string merged = scratch->Join("merged");
  for (const std::string& made : {lower, layer, upper, work, merged}) {
    if (!base::MakeDirectories(made, 0700).ok()) return false;
  }
  if (!IdmappedBind(lower, layer, userns->Get()).ok()) return false;
  std::string data = absl::StrCat("lowerdir=", layer, ",upperdir=", upper, ",workdir=", work);
  bool overlay = ::mount("overlay", merged.c_str(), "overlay", 0, data.c_str()) == 0;
  if (overlay) ::umount2(merged.c_str(), MNT_DETACH);
  ::umount2(layer.c_str(), MNT_DETACH);
  return overlay;
}

}  // namespace kapal::runtime
