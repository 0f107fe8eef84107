#include "runtime/users.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <set>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/files.h"
#include "base/unique_fd.h"

namespace kapal::runtime {

namespace {

using runtime::v1::ContainerConfig;

// Reads FILE of the image's root without leaving it: symlinks and ".." resolve inside ROOTFS,
// as they would inside the container (a hostile image cannot make kapald read host files).
absl::StatusOr<std::string> ReadFileInRoot(const std::string& rootfs, const std::string& file) {
  base::UniqueFd root(::open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) return base::ErrnoStatus(errno, "open " + rootfs);
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  base::UniqueFd fd(
      static_cast<int>(::syscall(SYS_openat2, root.Get(), file.c_str(), &how, sizeof how)));
  if (!fd) return base::ErrnoStatus(errno, "open " + file + " in the image");
  std::string text;
  char buffer[8192];
  ssize_t n;
  while ((n = ::read(fd.Get(), buffer, sizeof buffer)) > 0) {
    text.append(buffer, static_cast<size_t>(n));
    if (text.size() > 16 * 1024 * 1024) break;  // a passwd file of that size is not one
  }
  return text;
}

// passwd/group entries: name:x:id:... , fields split by ':'.
struct Entry {
  std::string name;
  uint32_t id = 0;
  uint32_t gid = 0;                  // passwd only
  std::vector<std::string> members;  // group only
};

std::vector<Entry> ParseDatabase(const std::string& text, bool group) {
  std::vector<Entry> entries;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (line.empty() || line[0] == '#') continue;
    std::vector<std::string> fields = absl::StrSplit(line, ':');
    if (fields.size() < (group ? 3u : 4u)) continue;
    Entry entry;
    entry.name = fields[0];
    if (!absl::SimpleAtoi(fields[2], &entry.id)) continue;
    if (!group && !absl::SimpleAtoi(fields[3], &entry.gid)) continue;
    if (group && fields.size() > 3 && !fields[3].empty()) {
      entry.members = absl::StrSplit(fields[3], ',');
    }
    entries.push_back(entry);
  }
  return entries;
}

bool IsNumber(const std::string& text) {
  return !text.empty() && std::all_of(text.begin(), text.end(), ::isdigit);
}

}  // namespace

absl::StatusOr<ProcessUser> ResolveUser(const std::string& rootfs, const ContainerConfig& config,
                                        const std::string& image_user) {
  const auto& sc = config.linux().security_context();
  // A group alone would run as the image's user with another group: Kubernetes (and containerd)
  // refuse it rather than guess.
  if (sc.has_run_as_group() && !sc.has_run_as_user() && sc.run_as_username().empty()) {
    return absl::InvalidArgumentError(
        "run_as_group is set without run_as_user or run_as_username: set the user as well");
  }
  std::string user = image_user;
  std::string group;
  if (size_t colon = user.find(':'); colon != std::string::npos) {
    group = user.substr(colon + 1);
    user = user.substr(0, colon);
  }
  if (sc.has_run_as_user()) {
    user = std::to_string(sc.run_as_user().value());
    group.clear();
  } else if (!sc.run_as_username().empty()) {
    user = sc.run_as_username();
    group.clear();
  }
  if (sc.has_run_as_group()) group = std::to_string(sc.run_as_group().value());

  std::vector<Entry> users, groups;
  if (absl::StatusOr<std::string> text = ReadFileInRoot(rootfs, "/etc/passwd"); text.ok()) {
    users = ParseDatabase(*text, false);
  }
  if (absl::StatusOr<std::string> text = ReadFileInRoot(rootfs, "/etc/group"); text.ok()) {
    groups = ParseDatabase(*text, true);
  }
  ProcessUser resolved;
  std::string user_name;
  if (user.empty()) user.assign(1, '0');  // assign of a literal trips GCC 12's -Wrestrict
  if (IsNumber(user)) {
    if (!absl::SimpleAtoi(user, &resolved.uid)) {
      return absl::InvalidArgumentError(absl::StrCat("user id ", user, " is out of range"));
    }
    for (const Entry& entry : users) {
      if (entry.id == resolved.uid) {
        resolved.gid = entry.gid;
        user_name = entry.name;
        break;
      }
    }
  } else {
    auto found = std::find_if(users.begin(), users.end(),
                              [&](const Entry& entry) { return entry.name == user; });
    if (found == users.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("user \"", user, "\" is not in the image's /etc/passwd"));
    }
    resolved.uid = found->id;
    resolved.gid = found->gid;
    user_name = found->name;
  }
  if (!group.empty()) {
    if (IsNumber(group)) {
      if (!absl::SimpleAtoi(group, &resolved.gid)) {
        return absl::InvalidArgumentError(absl::StrCat("group id ", group, " is out of range"));
      }
    } else {
      auto found = std::find_if(groups.begin(), groups.end(),
                                [&](const Entry& entry) { return entry.name == group; });
      if (found == groups.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("group \"", group, "\" is not in the image's /etc/group"));
      }
      resolved.gid = found->id;
    }
  }
  // Merge (the default) adds the groups the image's /etc/group lists the user in; Strict takes
  // only the groups the pod gave (KEP-3619). The primary group is one of the process's groups
  // either way, as containerd and CRI-O make it (`id` shows it under groups=).
  std::set<uint32_t> extra;
  extra.insert(resolved.gid);
  if (!user_name.empty() && sc.supplemental_groups_policy() != runtime::v1::Strict) {
    for (const Entry& entry : groups) {
      if (std::find(entry.members.begin(), entry.members.end(), user_name) != entry.members.end()) {
        extra.insert(entry.id);
      }
    }
  }
  for (int64_t gid : sc.supplemental_groups()) extra.insert(static_cast<uint32_t>(gid));
  resolved.additional_gids.assign(extra.begin(), extra.end());
  return resolved;
}

}  // namespace kapal::runtime
