#include "runtime/handlers.h"

#include <unistd.h>

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/files.h"
#include "runtime/security.h"
#include "runtime/userns.h"

namespace kapal::runtime {

Handlers::Handlers(const Options& options, const HostFacts& host)
    : default_name_(options.default_runtime), cgroup_layout_(host.cgroup_layout) {
  // kapal-shim is installed next to kapald (the build puts both in one directory).
  char self[4096] = {};
  ssize_t n = ::readlink("/proc/self/exe", self, sizeof self - 1);
  std::string dir = n > 0 ? std::string(self, static_cast<size_t>(n)) : "";
  dir = dir.substr(0, dir.rfind('/'));
  shim_binary_ = options.shim_binary.empty() ? dir + "/kapal-shim" : options.shim_binary;
  bool systemd = ResolveCgroupDriver(options.cgroup_driver, host) == CgroupDriver::kSystemd;
  // Probed where the snapshots are: their filesystem is what the containers' layers need to be
  // idmapped on.
  bool idmapped_mounts = IdmappedMountsSupported(shim_binary_, options.root_dir);
  for (const auto& [name, handler] : options.runtimes) {
    absl::StatusOr<std::string> binary = base::FindExecutable(handler.binary);
    handlers_[name] = std::make_unique<Handler>(
        Handler{name,
                OciRuntime(binary.ok() ? *binary : handler.binary,
                           absl::StrCat(options.state_dir, "/runtime/", name), systemd),
                HandlerFeatures{}});
    std::vector<std::string> mount_options = handlers_[name]->runtime.MountOptions();
    handlers_[name]->features.recursive_read_only =
        std::find(mount_options.begin(), mount_options.end(), "rro") != mount_options.end();
    handlers_[name]->features.user_namespaces = idmapped_mounts;
  }
  held_capabilities_ = runtime::HeldCapabilities();
  if (std::find(held_capabilities_.begin(), held_capabilities_.end(), "CAP_SYS_RESOURCE") ==
      held_capabilities_.end()) {
    absl::StatusOr<std::string> own = base::ReadFile("/proc/self/oom_score_adj");
    int value = 0;
    if (own.ok() && absl::SimpleAtoi(absl::StripAsciiWhitespace(*own), &value)) {
      min_oom_score_adj_ = value;
    }
  }
}

absl::StatusOr<const Handler*> Handlers::Find(const std::string& name) const {
  const std::string& wanted = name.empty() ? default_name_ : name;
  auto found = handlers_.find(wanted);
  if (found == handlers_.end()) {
    return absl::NotFoundError(absl::StrCat("no runtime handler \"", wanted, "\"; kapald has ",
                                            absl::StrJoin(Names(), ", ")));
  }
  return found->second.get();
}

std::vector<std::string> Handlers::Names() const {
  std::vector<std::string> names;
  for (const auto& [name, handler] : handlers_) names.push_back(name);
  return names;
}

std::vector<const Handler*> Handlers::All() const {
  std::vector<const Handler*> all;
  for (const auto& [name, handler] : handlers_) all.push_back(handler.get());
  return all;
}

nlohmann::json Handlers::Describe() const {
  nlohmann::json handlers = nlohmann::json::object();
  for (const auto& [name, handler] : handlers_) {
    const std::string& binary = handler->runtime.Binary();
    handlers[name] = {{"binary", binary},
                      {"features",
                       {{"recursiveReadOnly", handler->features.recursive_read_only},
                        {"userNamespaces", handler->features.user_namespaces}}}};
    // Known on hosts like this one: crun 1.8 refuses cgroup v1 "hybrid" layouts at create.
    if (absl::EndsWith(binary, "/crun") && cgroup_layout_ == CgroupLayout::kHybrid) {
      handlers[name]["warning"] =
          "crun may refuse this host's cgroup v1 hybrid layout (\"cgroups in hybrid mode not "
          "supported\"); use runc here";
    }
  }
  return {{"shim", shim_binary_},
          {"handlers", handlers},
          {"min_oom_score_adj", min_oom_score_adj_},
          {"oom_score_adj_restricted", min_oom_score_adj_ > -1000},
          {"capabilities", held_capabilities_}};
}

}  // namespace kapal::runtime
