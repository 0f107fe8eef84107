#include "builder/copy.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <deque>
#include <functional>
#include <memory>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/files.h"
#include "base/unique_fd.h"
#include "images/digest.h"
#include "runtime/users.h"

namespace kapal::builder {

namespace {

std::vector<std::string> SortedChildren(const std::string& path) {
  std::vector<std::string> names;
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(path.c_str()), ::closedir);
  if (!dir) return names;
  while (dirent* item = ::readdir(dir.get())) {
    std::string name = item->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

// PATH without ".", "..", doubled or leading slashes; nullopt when ".." leaves the top.
std::optional<std::string> CleanRelative(const std::string& path) {
  std::vector<std::string> kept;
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    if (part == ".") continue;
    if (part == "..") {
      if (kept.empty()) return std::nullopt;
      kept.pop_back();
      continue;
    }
    kept.emplace_back(part);
  }
  return absl::StrJoin(kept, "/");
}

std::string Join(const std::string& root, const std::string& relative) {
  return relative.empty() ? root : root + "/" + relative;
}

void WalkRelative(const std::string& root, const std::string& relative,
                  const std::function<void(const std::string&, const struct stat&)>& visit) {
  for (const std::string& name : SortedChildren(Join(root, relative))) {
    std::string child = relative.empty() ? name : relative + "/" + name;
    struct stat st {};
    if (::lstat(Join(root, child).c_str(), &st) != 0) continue;
    visit(child, st);
    if (S_ISDIR(st.st_mode)) WalkRelative(root, child, visit);
  }
}

absl::Status SetTimes(const std::string& path, const struct stat& source) {
  timespec times[2] = {source.st_atim, source.st_mtim};
  if (::utimensat(AT_FDCWD, path.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
    return base::ErrnoStatus(errno, "set times of " + path);
  }
  return absl::OkStatus();
}

absl::Status CopyFileData(const std::string& from, const std::string& to, const struct stat& st,
                          const Owner& owner) {
  base::UniqueFd in(::open(from.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
  if (!in) return base::ErrnoStatus(errno, "open " + from);
  base::UniqueFd out(
      ::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!out) return base::ErrnoStatus(errno, "create " + to);
  off_t left = st.st_size;
  bool in_kernel = true;  // copy_file_range, until the kernel refuses it (across filesystems)
  std::vector<char> buffer;
  while (left > 0) {
    ssize_t n;
    if (in_kernel) {
      n = ::copy_file_range(in.Get(), nullptr, out.Get(), nullptr, static_cast<size_t>(left), 0);
      if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) {
        in_kernel = false;
        buffer.resize(1 << 20);
        continue;
      }
    } else {
      n = ::read(in.Get(), buffer.data(), std::min(buffer.size(), static_cast<size_t>(left)));
      if (n > 0) {
        if (absl::Status written = base::WriteAll(
                out.Get(), absl::string_view(buffer.data(), static_cast<size_t>(n)), to);
            !written.ok()) {
          return written;
        }
      }
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return base::ErrnoStatus(errno, "copy " + from);
    if (n == 0) break;  // the file shrank meanwhile
    left -= n;
  }
  if (::fchown(out.Get(), owner.uid, owner.gid) != 0)
    return base::ErrnoStatus(errno, "chown " + to);
  if (::fchmod(out.Get(), st.st_mode & 07777) != 0) return base::ErrnoStatus(errno, "chmod " + to);
  timespec times[2] = {st.st_atim, st.st_mtim};
  if (::futimens(out.Get(), times) != 0) return base::ErrnoStatus(errno, "set times of " + to);
  return absl::OkStatus();
}

// Copies the entry at host path FROM to DESTINATION (absolute inside ROOT).
absl::Status CopyEntry(const std::string& from, const std::string& root,
                       const std::string& destination, const Owner& owner) {
  struct stat st {};
  if (::lstat(from.c_str(), &st) != 0) return base::ErrnoStatus(errno, "lstat " + from);
  if (S_ISDIR(st.st_mode)) {
    absl::StatusOr<std::string> target = MakeDirectoriesInRoot(root, destination, owner);
    if (!target.ok()) return target.status();
    for (const std::string& name : SortedChildren(from)) {
      if (absl::Status copied = CopyEntry(from + "/" + name, root, destination + "/" + name, owner);
          !copied.ok()) {
        return copied;
      }
    }
    if (::chmod(target->c_str(), st.st_mode & 07777) != 0) {
      return base::ErrnoStatus(errno, "chmod " + *target);
    }
    return SetTimes(*target, st);
  }
  size_t slash = destination.rfind('/');
  std::string parent_path = destination.substr(0, slash);
  std::string name = destination.substr(slash + 1);
  absl::StatusOr<std::string> parent = MakeDirectoriesInRoot(root, parent_path, owner);
  if (!parent.ok()) return parent.status();
  std::string target = *parent + "/" + name;
  struct stat existing {};
  if (::lstat(target.c_str(), &existing) == 0) {
    if (S_ISDIR(existing.st_mode)) {
      return absl::FailedPreconditionError(
          absl::StrCat("cannot overwrite directory ", destination, " with a file"));
    }
    if (::unlink(target.c_str()) != 0) return base::ErrnoStatus(errno, "replace " + destination);
  }
  if (S_ISREG(st.st_mode)) return CopyFileData(from, target, st, owner);
  if (S_ISLNK(st.st_mode)) {
    std::string link(static_cast<size_t>(st.st_size) + 1, '\0');
    ssize_t n = ::readlink(from.c_str(), link.data(), link.size());
    if (n < 0) return base::ErrnoStatus(errno, "readlink " + from);
    link.resize(static_cast<size_t>(n));
    if (::symlink(link.c_str(), target.c_str()) != 0) {
      return base::ErrnoStatus(errno, "symlink " + destination);
    }
    if (::lchown(target.c_str(), owner.uid, owner.gid) != 0) {
      return base::ErrnoStatus(errno, "chown " + destination);
    }
    return SetTimes(target, st);
  }
  // Sockets, fifos and devices in a build context are not image content.
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> MatchSources(const std::string& source_root,
                                                      const std::vector<std::string>& patterns) {
  std::vector<std::string> matched;
  for (const std::string& pattern : patterns) {
    std::optional<std::string> clean = CleanRelative(pattern);
    if (!clean.has_value()) {
      return absl::InvalidArgumentError(
          absl::StrCat("Forbidden path outside the build context: ", pattern));
    }
    size_t before = matched.size();
    if (clean->find_first_of("*?[") != std::string::npos) {
      WalkRelative(source_root, "", [&](const std::string& relative, const struct stat&) {
        if (::fnmatch(clean->c_str(), relative.c_str(), FNM_PATHNAME) == 0) {
          matched.push_back(relative);
        }
      });
    } else {
      struct stat st {};
      if (::lstat(Join(source_root, *clean).c_str(), &st) == 0) matched.push_back(*clean);
    }
    if (matched.size() == before) {
      return absl::NotFoundError(
          absl::StrCat("COPY failed: file not found in build context or excluded by "
                       ".dockerignore: stat ",
                       pattern, ": file does not exist"));
    }
  }
  return matched;
}

absl::StatusOr<std::string> SourcesChecksum(const std::string& source_root,
                                            const std::vector<std::string>& sources) {
  absl::StatusOr<images::Hasher> hasher = images::Hasher::ForAlgorithm("sha256");
  if (!hasher.ok()) return hasher.status();
  absl::Status failed;
  std::vector<char> buffer(256 * 1024);
  auto add = [&](const std::string& relative, const struct stat& st) {
    const std::string separator(1, '\0');
    std::string head =
        absl::StrCat(relative, separator, st.st_mode, separator, st.st_size, separator);
    hasher->Update(head.data(), head.size());
    std::string path = Join(source_root, relative);
    if (S_ISREG(st.st_mode)) {
      // In pieces: a context may hold files of gigabytes.
      base::UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
      if (!fd) {
        failed = base::ErrnoStatus(errno, "open " + path);
        return;
      }
      for (;;) {
        ssize_t n = ::read(fd.Get(), buffer.data(), buffer.size());
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
          failed = base::ErrnoStatus(errno, "read " + path);
          return;
        }
        if (n == 0) break;
        hasher->Update(buffer.data(), static_cast<size_t>(n));
      }
    } else if (S_ISLNK(st.st_mode)) {
      char link[4096];
      ssize_t n = ::readlink(path.c_str(), link, sizeof link);
      if (n > 0) hasher->Update(link, static_cast<size_t>(n));
    }
  };
  for (const std::string& source : sources) {
    struct stat st {};
    if (::lstat(Join(source_root, source).c_str(), &st) != 0) {
      return base::ErrnoStatus(errno, "lstat " + source);
    }
    add(source, st);
    if (S_ISDIR(st.st_mode)) WalkRelative(source_root, source, add);
    if (!failed.ok()) return failed;
  }
  return hasher->Finish().String();
}

absl::StatusOr<std::string> MakeDirectoriesInRoot(const std::string& root, const std::string& path,
                                                  const std::optional<Owner>& owner) {
  std::string prefix;
  std::string host = root;
  for (absl::string_view part : absl::StrSplit(path, '/', absl::SkipEmpty())) {
    prefix += "/" + std::string(part);
    absl::StatusOr<std::string> resolved = base::ResolveInRoot(root, prefix);
    if (!resolved.ok()) return resolved.status();
    host = *resolved;
    struct stat st {};
    if (::lstat(host.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) {
        return absl::FailedPreconditionError(
            absl::StrCat(prefix, " exists in the image and is not a directory"));
      }
      continue;
    }
    // kapald's umask must not decide what the image holds.
    if (::mkdir(host.c_str(), 0755) != 0 || ::chmod(host.c_str(), 0755) != 0) {
      return base::ErrnoStatus(errno, "mkdir " + prefix);
    }
    if (owner.has_value() && ::lchown(host.c_str(), owner->uid, owner->gid) != 0) {
      return base::ErrnoStatus(errno, "chown " + prefix);
    }
  }
  return host;
}

absl::Status CopyIntoRoot(const std::string& source_root, const std::vector<std::string>& sources,
                          const std::string& root, const std::string& destination,
                          const std::optional<Owner>& owner) {
  Owner effective = owner.value_or(Owner{});
  bool into_directory = absl::EndsWith(destination, "/") || sources.size() > 1;
  if (!into_directory) {
    absl::StatusOr<std::string> resolved = base::ResolveInRoot(root, destination);
    struct stat st {};
    into_directory = resolved.ok() && ::stat(resolved->c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  }
  std::string base = destination;
  while (base.size() > 1 && absl::EndsWith(base, "/")) base.pop_back();
  for (const std::string& source : sources) {
    std::string from = Join(source_root, source);
    struct stat st {};
    if (::lstat(from.c_str(), &st) != 0) return base::ErrnoStatus(errno, "lstat " + source);
    std::string target = base;
    if (S_ISDIR(st.st_mode)) {
      // A directory's contents, not the directory itself, as Docker copies them.
      absl::StatusOr<std::string> made = MakeDirectoriesInRoot(root, base, owner);
      if (!made.ok()) return made.status();
      for (const std::string& name : SortedChildren(from)) {
        if (absl::Status copied = CopyEntry(from + "/" + name, root,
                                            (base == "/" ? "" : base) + "/" + name, effective);
            !copied.ok()) {
          return copied;
        }
      }
      continue;
    }
    if (into_directory) {
      std::string name = source.substr(source.rfind('/') + 1);
      target = (base == "/" ? "" : base) + "/" + name;
    }
    if (absl::Status copied = CopyEntry(from, root, target, effective); !copied.ok()) {
      return copied;
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Owner> ResolveOwner(const std::string& root, const std::string& spec) {
  // Names are looked up as for a container's user (the core's resolution, never leaving ROOT);
  // Docker's rule for --chown: without a group, the group id is the user id.
  absl::StatusOr<runtime::ProcessUser> user =
      runtime::ResolveUser(root, runtime::v1::ContainerConfig(), spec);
  if (!user.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unable to convert uid/gid chown string to host mapping: ", user.status().message()));
  }
  Owner owner{user->uid, user->gid};
  if (spec.find(':') == std::string::npos) owner.gid = owner.uid;
  return owner;
}

}  // namespace kapal::builder
