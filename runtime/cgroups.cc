#include "runtime/cgroups.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/files.h"
#include "base/unique_fd.h"

namespace kapal::runtime {

namespace {

constexpr char kCgroupRoot[] = "/sys/fs/cgroup";

std::optional<uint64_t> ReadNumber(const std::string& path) {
  absl::StatusOr<std::string> text = base::ReadFile(path);
  uint64_t value = 0;
  if (!text.ok() || !absl::SimpleAtoi(absl::StripAsciiWhitespace(*text), &value)) {
    return std::nullopt;
  }
  return value;
}

// "key value" lines (memory.stat, cpu.stat).
std::map<std::string, uint64_t> ReadKeyedFile(const std::string& path) {
  std::map<std::string, uint64_t> values;
  absl::StatusOr<std::string> text = base::ReadFile(path);
  if (!text.ok()) return values;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> fields = absl::StrSplit(line, ' ', absl::SkipEmpty());
    uint64_t value = 0;
    if (fields.size() == 2 && absl::SimpleAtoi(fields[1], &value)) {
      values[std::string(fields[0])] = value;
    }
  }
  return values;
}

std::optional<uint64_t> Find(const std::map<std::string, uint64_t>& values,
                             const std::string& key) {
  auto found = values.find(key);
  if (found == values.end()) return std::nullopt;
  return found->second;
}

// A limit so large it means none (v1 reports PAGE_COUNTER_MAX rounded to pages).
std::optional<uint64_t> Limit(std::optional<uint64_t> value) {
  if (!value.has_value() || *value >= (uint64_t{1} << 62)) return std::nullopt;
  return value;
}

// memory.stat's counters into SAMPLE (whose usage is read already). v1 names those that
// include the children "total_*", v2 has them without prefix and calls RSS "anon".
void TakeMemoryStat(const std::map<std::string, uint64_t>& stat, const std::string& prefix,
                    const std::string& rss, CgroupSample& sample) {
  sample.memory_rss = Find(stat, prefix + rss);
  sample.page_faults = Find(stat, prefix + "pgfault");
  sample.major_page_faults = Find(stat, prefix + "pgmajfault");
  if (sample.memory_usage.has_value()) {
    // The working set, as kubelet evicts by it: usage without the inactive file cache.
    uint64_t inactive = Find(stat, prefix + "inactive_file").value_or(0);
    sample.memory_working_set =
        *sample.memory_usage > inactive ? *sample.memory_usage - inactive : 0;
  }
}

}  // namespace

std::string Cgroups::PodParent(const Pod& pod) const {
  std::string parent = pod.config.linux().cgroup_parent();
  if (driver_ == CgroupDriver::kSystemd) {
    return absl::EndsWith(parent, ".slice") ? parent : "kapal.slice";
  }
  if (parent.empty()) parent = absl::StrCat("/kapal/", pod.id);
  if (parent[0] != '/') parent = "/" + parent;
  return parent;
}

std::string Cgroups::ContainerPath(const Pod& pod, const std::string& container_id) const {
  if (driver_ == CgroupDriver::kSystemd) {
    return absl::StrCat(PodParent(pod), ":kapal:", container_id);
  }
  return absl::StrCat(PodParent(pod), "/", container_id);
}

std::string Cgroups::Directory(const std::string& cgroups_path) const {
  if (driver_ != CgroupDriver::kSystemd) return cgroups_path;
  // systemd: "a-b-c.slice" lives at /a.slice/a-b.slice/a-b-c.slice; a unit "PREFIX:NAME" is
  // the scope PREFIX-NAME.scope inside the slice.
  std::vector<std::string> parts = absl::StrSplit(cgroups_path, ':');
  std::string slice = parts[0];
  std::string directory;
  if (slice != "-.slice") {
    std::string name = slice.substr(0, slice.size() - std::string(".slice").size());
    std::string prefix;
    for (absl::string_view piece : absl::StrSplit(name, '-')) {
      prefix = prefix.empty() ? std::string(piece) : absl::StrCat(prefix, "-", piece);
      absl::StrAppend(&directory, "/", prefix, ".slice");
    }
  }
  if (parts.size() == 3) absl::StrAppend(&directory, "/", parts[1], "-", parts[2], ".scope");
  return directory;
}

std::string Cgroups::OomFile(const std::string& cgroups_path) const {
  std::string directory = Directory(cgroups_path);
  if (directory.empty() || directory[0] != '/') return "";
  if (V2()) return absl::StrCat(kCgroupRoot, directory, "/memory.events");
  return absl::StrCat(kCgroupRoot, "/memory", directory, "/memory.oom_control");
}

bool Cgroups::Frozen(const std::string& cgroups_path) const {
  std::string directory = Directory(cgroups_path);
  if (directory.empty() || directory[0] != '/') return false;
  if (V2()) {
    absl::StatusOr<std::string> freeze =
        base::ReadFile(absl::StrCat(kCgroupRoot, directory, "/cgroup.freeze"));
    return freeze.ok() && absl::StripAsciiWhitespace(*freeze) == "1";
  }
  absl::StatusOr<std::string> state =
      base::ReadFile(absl::StrCat(kCgroupRoot, "/freezer", directory, "/freezer.state"));
  return state.ok() && absl::StripAsciiWhitespace(*state) == "FROZEN";
}

void Cgroups::OpenUpSharedParent() const {
  if (driver_ == CgroupDriver::kSystemd) return;
  std::vector<std::string> roots = {kCgroupRoot};
  if (absl::StatusOr<std::vector<std::string>> names = base::ListDirectory(kCgroupRoot);
      names.ok()) {
    for (const std::string& name : *names) roots.push_back(absl::StrCat(kCgroupRoot, "/", name));
  }
  for (const std::string& root : roots) {
    std::string parent = root + "/kapal";
    struct stat st {};
    if (::stat(parent.c_str(), &st) == 0 && S_ISDIR(st.st_mode) && (st.st_mode & 0755) != 0755) {
      ::chmod(parent.c_str(), 0755);
    }
  }
}

namespace {

absl::Status WriteCgroupFile(const std::string& path, const std::string& value) {
  base::UniqueFd file(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!file) return base::ErrnoStatus(errno, "open " + path);
  if (::write(file.Get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    return absl::FailedPreconditionError(
        absl::StrCat("write ", value, " to ", path, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status Cgroups::ApplyPodLimits(const Pod& pod,
                                     const runtime::v1::LinuxContainerResources& limits) const {
  if (!pod.config.linux().cgroup_parent().empty() || driver_ == CgroupDriver::kSystemd) {
    return absl::OkStatus();
  }
  std::string dir = PodParent(pod);
  std::vector<std::pair<std::string, std::string>> writes;  // file below the root, value
  int64_t period = limits.cpu_period() > 0 ? limits.cpu_period() : 100000;
  if (V2()) {
    if (limits.cpu_quota() > 0) {
      writes.emplace_back(dir + "/cpu.max", absl::StrCat(limits.cpu_quota(), " ", period));
    }
    if (limits.cpu_shares() > 0) {
      // runc's conversion of cgroup v1 shares (2..262144) to v2 weight (1..10000).
      int64_t weight = 1 + ((limits.cpu_shares() - 2) * 9999) / 262142;
      writes.emplace_back(dir + "/cpu.weight",
                          std::to_string(std::clamp<int64_t>(weight, 1, 10000)));
    }
    if (limits.memory_limit_in_bytes() > 0) {
      writes.emplace_back(dir + "/memory.max", std::to_string(limits.memory_limit_in_bytes()));
    }
  } else {
    std::string cpu = V1Hierarchy(kCgroupRoot, "cpu") + dir;
    if (limits.cpu_quota() > 0) {
      writes.emplace_back(cpu + "/cpu.cfs_period_us", std::to_string(period));
      writes.emplace_back(cpu + "/cpu.cfs_quota_us", std::to_string(limits.cpu_quota()));
    }
    if (limits.cpu_shares() > 0) {
      writes.emplace_back(cpu + "/cpu.shares", std::to_string(limits.cpu_shares()));
    }
    if (limits.memory_limit_in_bytes() > 0) {
      writes.emplace_back(V1Hierarchy(kCgroupRoot, "memory") + dir + "/memory.limit_in_bytes",
                          std::to_string(limits.memory_limit_in_bytes()));
    }
  }
  for (const auto& [file, value] : writes) {
    std::string path = V2() ? std::string(kCgroupRoot) + file : file;
    if (absl::Status made = base::MakeDirectories(path.substr(0, path.rfind('/')), 0755);
        !made.ok()) {
      return made;
    }
    if (absl::Status written = WriteCgroupFile(path, value); !written.ok()) return written;
  }
  return absl::OkStatus();
}

void Cgroups::RemovePodParent(const Pod& pod) const {
  // Only the parent kapal made up (no cgroup_parent given); kubelet's own it removes itself.
  if (!pod.config.linux().cgroup_parent().empty() || driver_ == CgroupDriver::kSystemd) return;
  absl::StatusOr<std::vector<std::string>> hierarchies = base::ListDirectory(kCgroupRoot);
  std::vector<std::string> roots = {kCgroupRoot};
  if (hierarchies.ok()) {
    for (const std::string& name : *hierarchies)
      roots.push_back(absl::StrCat(kCgroupRoot, "/", name));
  }
  // /kapal itself stays: runc makes a new pod's path one directory at a time, and removing the
  // shared parent between its mkdir of /kapal and of /kapal/POD fails that pod's start (ENOENT).
  for (const std::string& root : roots) ::rmdir(absl::StrCat(root, "/kapal/", pod.id).c_str());
}

namespace {

// v2 io.stat: "MAJ:MIN rbytes=N wbytes=N rios=N ..." per device; summed.
void TakeIoStat(const std::string& path, CgroupSample& sample) {
  absl::StatusOr<std::string> text = base::ReadFile(path);
  if (!text.ok()) return;
  uint64_t read = 0, written = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    for (absl::string_view field : absl::StrSplit(line, ' ', absl::SkipEmpty())) {
      uint64_t value = 0;
      if (absl::ConsumePrefix(&field, "rbytes=") && absl::SimpleAtoi(field, &value)) read += value;
      if (absl::ConsumePrefix(&field, "wbytes=") && absl::SimpleAtoi(field, &value)) {
        written += value;
      }
    }
  }
  sample.io_read_bytes = read;
  sample.io_write_bytes = written;
}

// v1 blkio.throttle.io_service_bytes: "MAJ:MIN Read N", "MAJ:MIN Write N", ..., "Total N".
void TakeBlkioServiceBytes(const std::string& path, CgroupSample& sample) {
  absl::StatusOr<std::string> text = base::ReadFile(path);
  if (!text.ok()) return;
  uint64_t read = 0, written = 0;
  for (absl::string_view line : absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipEmpty());
    uint64_t value = 0;
    if (words.size() != 3 || !absl::SimpleAtoi(words[2], &value)) continue;
    if (words[1] == "Read") read += value;
    if (words[1] == "Write") written += value;
  }
  sample.io_read_bytes = read;
  sample.io_write_bytes = written;
}

}  // namespace

absl::StatusOr<CgroupSample> ReadCgroup(CgroupLayout layout, const std::string& directory,
                                        const std::string& root) {
  CgroupSample sample;
  if (layout == CgroupLayout::kV2) {
    std::string dir = absl::StrCat(root, directory);
    if (::access(dir.c_str(), F_OK) != 0) {
      return absl::NotFoundError(absl::StrCat("cgroup ", directory, " does not exist"));
    }
    std::map<std::string, uint64_t> cpu = ReadKeyedFile(dir + "/cpu.stat");
    auto nanos = [&](const char* key) -> std::optional<uint64_t> {
      std::optional<uint64_t> usec = Find(cpu, key);
      return usec.has_value() ? std::optional<uint64_t>(*usec * 1000) : std::nullopt;
    };
    sample.cpu_usage_ns = nanos("usage_usec");
    sample.cpu_user_ns = nanos("user_usec");
    sample.cpu_system_ns = nanos("system_usec");
    sample.cfs_periods = Find(cpu, "nr_periods");
    sample.cfs_throttled_periods = Find(cpu, "nr_throttled");
    sample.cfs_throttled_ns = nanos("throttled_usec");
    sample.memory_usage = ReadNumber(dir + "/memory.current");
    std::map<std::string, uint64_t> memory = ReadKeyedFile(dir + "/memory.stat");
    TakeMemoryStat(memory, "", "anon", sample);
    sample.memory_cache = Find(memory, "file");
    sample.memory_mapped_file = Find(memory, "file_mapped");
    sample.memory_swap = ReadNumber(dir + "/memory.swap.current");
    std::map<std::string, uint64_t> events = ReadKeyedFile(dir + "/memory.events");
    sample.memory_failcnt = Find(events, "max");
    sample.oom_kills = Find(events, "oom_kill");
    sample.memory_max_usage = ReadNumber(dir + "/memory.peak");
    sample.memory_limit = Limit(ReadNumber(dir + "/memory.max"));  // "max" does not parse
    sample.processes = ReadNumber(dir + "/pids.current");
    sample.processes_limit = ReadNumber(dir + "/pids.max");
    TakeIoStat(dir + "/io.stat", sample);
    return sample;
  }
  // v1 and hybrid: the controllers' own hierarchies (runc puts containers there).
  std::string memory_dir = absl::StrCat(V1Hierarchy(root, "memory"), directory);
  if (::access(memory_dir.c_str(), F_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("cgroup ", directory, " does not exist"));
  }
  std::string cpuacct_dir = absl::StrCat(V1Hierarchy(root, "cpuacct"), directory);
  sample.cpu_usage_ns = ReadNumber(cpuacct_dir + "/cpuacct.usage");
  // cpuacct.stat counts in clock ticks (USER_HZ).
  std::map<std::string, uint64_t> ticks = ReadKeyedFile(cpuacct_dir + "/cpuacct.stat");
  uint64_t tick_ns = 1'000'000'000 / static_cast<uint64_t>(std::max(1L, ::sysconf(_SC_CLK_TCK)));
  if (auto user = Find(ticks, "user")) sample.cpu_user_ns = *user * tick_ns;
  if (auto system = Find(ticks, "system")) sample.cpu_system_ns = *system * tick_ns;
  std::map<std::string, uint64_t> cpu =
      ReadKeyedFile(absl::StrCat(V1Hierarchy(root, "cpu"), directory, "/cpu.stat"));
  sample.cfs_periods = Find(cpu, "nr_periods");
  sample.cfs_throttled_periods = Find(cpu, "nr_throttled");
  sample.cfs_throttled_ns = Find(cpu, "throttled_time");
  sample.memory_usage = ReadNumber(memory_dir + "/memory.usage_in_bytes");
  std::map<std::string, uint64_t> memory = ReadKeyedFile(memory_dir + "/memory.stat");
  TakeMemoryStat(memory, "total_", "rss", sample);
  sample.memory_cache = Find(memory, "total_cache");
  sample.memory_mapped_file = Find(memory, "total_mapped_file");
  sample.memory_swap = Find(memory, "total_swap");
  sample.memory_failcnt = ReadNumber(memory_dir + "/memory.failcnt");
  sample.memory_max_usage = ReadNumber(memory_dir + "/memory.max_usage_in_bytes");
  sample.oom_kills = Find(ReadKeyedFile(memory_dir + "/memory.oom_control"), "oom_kill");
  sample.memory_limit = Limit(ReadNumber(memory_dir + "/memory.limit_in_bytes"));
  std::string pids_dir = absl::StrCat(V1Hierarchy(root, "pids"), directory);
  sample.processes = ReadNumber(pids_dir + "/pids.current");
  sample.processes_limit = ReadNumber(pids_dir + "/pids.max");
  TakeBlkioServiceBytes(
      absl::StrCat(V1Hierarchy(root, "blkio"), directory, "/blkio.throttle.io_service_bytes"),
      sample);
  return sample;
}

}  // namespace kapal::runtime
