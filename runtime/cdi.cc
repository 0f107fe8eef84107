#include "runtime/cdi.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/files.h"

namespace kapal::runtime {

namespace {

using nlohmann::json;

// YAML (a superset of JSON, so both kinds of spec file) as JSON values: a plain scalar that
// reads as an integer or a boolean is one, a quoted one stays a string.
json ToJson(const YAML::Node& node) {
  switch (node.Type()) {
    case YAML::NodeType::Map: {
      json object = json::object();
      for (const auto& entry : node) object[entry.first.as<std::string>()] = ToJson(entry.second);
      return object;
    }
    case YAML::NodeType::Sequence: {
      json array = json::array();
      for (const auto& element : node) array.push_back(ToJson(element));
      return array;
    }
    case YAML::NodeType::Scalar: {
      const std::string& text = node.Scalar();
      if (node.Tag() == "?") {  // plain, not quoted
        int64_t number = 0;
        if (absl::SimpleAtoi(text, &number)) return number;
        if (text == "true" || text == "false") return text == "true";
      }
      return text;
    }
    default:
      return nullptr;
  }
}

// A string field (a number written without quotes counts as its digits).
std::string Text(const json& object, const char* key) {
  if (!object.is_object() || !object.contains(key)) return "";
  const json& value = object[key];
  if (value.is_string()) return value.get<std::string>();
  if (value.is_number_integer()) return std::to_string(value.get<int64_t>());
  return "";
}

std::vector<std::string> Texts(const json& object, const char* key) {
  std::vector<std::string> texts;
  if (!object.is_object() || !object.contains(key) || !object[key].is_array()) return texts;
  for (const json& value : object[key]) {
    texts.push_back(value.is_string() ? value.get<std::string>() : value.dump());
  }
  return texts;
}

struct Spec {
  std::string file;
  std::string kind;                     // vendor.com/class
  json edits;                           // the spec's own containerEdits (null when none)
  std::map<std::string, json> devices;  // name -> containerEdits
};

// A qualified name: VENDOR/CLASS=NAME, each part non-empty.
bool SplitName(const std::string& qualified, std::string& kind, std::string& name) {
  size_t equals = qualified.find('=');
  if (equals == std::string::npos) return false;
  kind = qualified.substr(0, equals);
  name = qualified.substr(equals + 1);
  size_t slash = kind.find('/');
  return slash != std::string::npos && slash > 0 && slash + 1 < kind.size() && !name.empty() &&
         kind.find('/', slash + 1) == std::string::npos;
}

absl::StatusOr<Spec> LoadSpec(const std::string& file) {
  absl::StatusOr<std::string> text = base::ReadFile(file);
  if (!text.ok()) return text.status();
  json document;
  try {
    document = ToJson(YAML::Load(*text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": not valid JSON or YAML: ", e.what()));
  }
  Spec spec;
  spec.file = file;
  spec.kind = Text(document, "kind");
  std::string vendor_kind, unused;
  if (Text(document, "cdiVersion").empty() || !SplitName(spec.kind + "=x", vendor_kind, unused)) {
    return absl::InvalidArgumentError(
        absl::StrCat(file, ": not a CDI spec (it needs cdiVersion and a kind VENDOR/CLASS)"));
  }
  if (document.contains("containerEdits")) spec.edits = document["containerEdits"];
  if (!document.contains("devices") || !document["devices"].is_array()) {
    return absl::InvalidArgumentError(absl::StrCat(file, ": a CDI spec needs a list of devices"));
  }
  for (const json& device : document["devices"]) {
    std::string name = Text(device, "name");
    if (name.empty()) return absl::InvalidArgumentError(file + ": a device without a name");
    spec.devices[name] = device.contains("containerEdits") ? device["containerEdits"] : json();
  }
  return spec;
}

// The edits of one device (or of a spec) applied to SPEC; INVALID_ARGUMENT naming SOURCE when
// they cannot be.
absl::Status ApplyEdits(const json& edits, const std::string& source, json& spec) {
  if (!edits.is_object()) return absl::OkStatus();
  json& process = spec["process"];
  for (const std::string& variable : Texts(edits, "env")) {
    std::string name = variable.substr(0, variable.find('='));
    json& env = process["env"];
    if (!env.is_array()) env = json::array();
    auto same = std::find_if(env.begin(), env.end(), [&](const json& existing) {
      return existing.is_string() && absl::StartsWith(existing.get<std::string>(), name + "=");
    });
    if (same != env.end()) {
      *same = variable;
    } else {
      env.push_back(variable);
    }
  }
  if (edits.contains("deviceNodes")) {
    json& devices = spec["linux"]["devices"];
    if (!devices.is_array()) devices = json::array();
    json& rules = spec["linux"]["resources"]["devices"];
    if (!rules.is_array()) rules = json::array();
    for (const json& node : edits["deviceNodes"]) {
      std::string path = Text(node, "path");
      std::string host_path = Text(node, "hostPath").empty() ? path : Text(node, "hostPath");
      if (path.empty() || path[0] != '/') {
        return absl::InvalidArgumentError(
            absl::StrCat(source, ": a device node needs an absolute path, not \"", path, "\""));
      }
      std::string type = Text(node, "type");
      int64_t major_number = node.value("major", int64_t{-1});
      int64_t minor_number = node.value("minor", int64_t{-1});
      int64_t mode = node.value("fileMode", int64_t{-1});
      if (type.empty() || major_number < 0 || minor_number < 0 || mode < 0) {
        struct stat st {};
        if (::stat(host_path.c_str(), &st) != 0) {
          return absl::InvalidArgumentError(
              absl::StrCat(source, ": device node ", host_path, ": ", std::strerror(errno)));
        }
        if (!S_ISCHR(st.st_mode) && !S_ISBLK(st.st_mode)) {
          return absl::InvalidArgumentError(
              absl::StrCat(source, ": ", host_path, " is not a character or block device"));
        }
        if (type.empty()) type = S_ISCHR(st.st_mode) ? "c" : "b";
        if (major_number < 0) major_number = major(st.st_rdev);
        if (minor_number < 0) minor_number = minor(st.st_rdev);
        if (mode < 0) mode = st.st_mode & 07777;
      }
      json device = {{"path", path},
                     {"type", type},
                     {"major", major_number},
                     {"minor", minor_number},
                     {"fileMode", mode},
                     {"uid", node.value("uid", 0)},
                     {"gid", node.value("gid", 0)}};
      devices.erase(std::remove_if(devices.begin(), devices.end(),
                                   [&](const json& d) { return d.value("path", "") == path; }),
                    devices.end());
      devices.push_back(device);
      std::string access = Text(node, "permissions").empty() ? "rwm" : Text(node, "permissions");
      rules.push_back({{"allow", true},
                       {"type", type},
                       {"major", major_number},
                       {"minor", minor_number},
                       {"access", access}});
    }
  }
  if (edits.contains("mounts")) {
    json& mounts = spec["mounts"];
    if (!mounts.is_array()) mounts = json::array();
    for (const json& mount : edits["mounts"]) {
      std::string host_path = Text(mount, "hostPath");
      std::string container_path = Text(mount, "containerPath");
      if (host_path.empty() || container_path.empty() || container_path[0] != '/') {
        return absl::InvalidArgumentError(
            absl::StrCat(source, ": a mount needs hostPath and an absolute containerPath"));
      }
      std::vector<std::string> options = Texts(mount, "options");
      std::string type = Text(mount, "type");
      if (type.empty()) type = "bind";
      if (type == "bind" && options.empty()) options = {"rbind", "rprivate"};
      mounts.push_back({{"destination", container_path},
                        {"type", type},
                        {"source", host_path},
                        {"options", options}});
    }
  }
  if (edits.contains("hooks")) {
    static const std::set<std::string> kHookNames = {
        "prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"};
    for (const json& hook : edits["hooks"]) {
      std::string hook_name = Text(hook, "hookName");
      if (kHookNames.count(hook_name) == 0 || Text(hook, "path").empty()) {
        return absl::InvalidArgumentError(
            absl::StrCat(source, ": a hook needs a path and a hookName of ",
                         absl::StrJoin(kHookNames, ", "), "; not \"", hook_name, "\""));
      }
      json entry = {{"path", Text(hook, "path")}};
      if (hook.contains("args")) entry["args"] = Texts(hook, "args");
      if (hook.contains("env")) entry["env"] = Texts(hook, "env");
      if (hook.contains("timeout")) entry["timeout"] = hook["timeout"];
      spec["hooks"][hook_name].push_back(entry);
    }
  }
  if (edits.contains("additionalGIDs")) {
    json& gids = process["user"]["additionalGids"];
    if (!gids.is_array()) gids = json::array();
    for (const json& gid : edits["additionalGIDs"]) {
      if (!gid.is_number_integer() || gid.get<int64_t>() < 0) {
        return absl::InvalidArgumentError(source + ": additionalGIDs must be group numbers");
      }
      if (std::find(gids.begin(), gids.end(), gid) == gids.end()) gids.push_back(gid);
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ApplyCdiDevices(const std::vector<std::string>& names,
                             const std::vector<std::string>& spec_dirs, json& oci_spec) {
  if (names.empty()) return absl::OkStatus();
  // Every spec of the directories; a later directory's definition of a device wins.
  std::vector<Spec> specs;
  std::vector<std::string> unreadable;
  for (const std::string& dir : spec_dirs) {
    absl::StatusOr<std::vector<std::string>> files = base::ListDirectory(dir);
    if (!files.ok()) continue;  // a spec directory that does not exist holds no device
    std::sort(files->begin(), files->end());
    for (const std::string& file : *files) {
      if (!absl::EndsWith(file, ".json") && !absl::EndsWith(file, ".yaml") &&
          !absl::EndsWith(file, ".yml")) {
        continue;
      }
      absl::StatusOr<Spec> spec = LoadSpec(absl::StrCat(dir, "/", file));
      if (spec.ok()) {
        specs.push_back(std::move(*spec));
      } else {
        unreadable.push_back(std::string(spec.status().message()));
      }
    }
  }
  json edited = oci_spec;
  std::set<const Spec*> specs_used;
  for (const std::string& qualified : names) {
    std::string kind, name;
    if (!SplitName(qualified, kind, name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "CDI device \"", qualified, "\" is not a qualified name such as vendor.com/class=name"));
    }
    const Spec* found = nullptr;
    for (const Spec& spec : specs) {
      if (spec.kind == kind && spec.devices.count(name) > 0) found = &spec;  // the last wins
    }
    if (found == nullptr) {
      std::string detail = unreadable.empty() ? ""
                                              : absl::StrCat("; specs that could not be read: ",
                                                             absl::StrJoin(unreadable, "; "));
      return absl::InvalidArgumentError(absl::StrCat("CDI device \"", qualified,
                                                     "\" is not defined by any spec in ",
                                                     absl::StrJoin(spec_dirs, ", "), detail));
    }
    std::string source = absl::StrCat("CDI device ", qualified, " (", found->file, ")");
    if (absl::Status applied = ApplyEdits(found->devices.at(name), source, edited); !applied.ok()) {
      return applied;
    }
    if (specs_used.insert(found).second) {
      if (absl::Status applied = ApplyEdits(found->edits, source, edited); !applied.ok()) {
        return applied;
      }
    }
  }
  oci_spec = std::move(edited);
  return absl::OkStatus();
}

}  // namespace kapal::runtime
