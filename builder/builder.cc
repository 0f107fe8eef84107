#include "builder/builder.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <optional>
#include <set>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/files.h"
#include "builder/copy.h"
#include "builder/dockerfile.h"
#include "builder/layer_diff.h"
#include "images/http_client.h"
#include "images/manifest.h"
#include "images/reference.h"
#include "images/unpack.h"
#include "nlohmann/json.hpp"
#include "runtime/cni.h"
#include "runtime/log_tail.h"
#include "snapshotter/mount.h"

namespace kapal::builder {

namespace {

constexpr char kConfigMediaType[] = "application/vnd.oci.image.config.v1+json";
constexpr char kBuildNamespace[] = "kapal-build";
constexpr char kBuildLabel[] = "io.kapal.build";
constexpr char kNop[] = "/bin/sh -c #(nop) ";
constexpr auto kWaitSlice = std::chrono::milliseconds(200);
constexpr char kRunExitCodePayload[] = "type.kapal.dev/builder.run-exit-code";

std::string ShortId(const std::string& id) {
  absl::string_view hex = id;
  absl::ConsumePrefix(&hex, "sha256:");
  return std::string(hex.substr(0, 12));
}

std::string NowText() {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E9SZ", absl::Now(), absl::UTCTimeZone());
}

// Go's durations as HEALTHCHECK takes them: "30s", "1m30s", "500ms"; in nanoseconds.
absl::StatusOr<int64_t> ParseDuration(const std::string& text) {
  absl::Duration duration;
  if (!absl::ParseDuration(text, &duration) || duration < absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat("invalid duration \"", text, "\""));
  }
  return absl::ToInt64Nanoseconds(duration);
}

std::string JsonText(const std::vector<std::string>& words) { return nlohmann::json(words).dump(); }

// One line of a CRI log file ("TIME STREAM F|P TEXT") as the builder prints it.
std::string LogText(absl::string_view line) {
  std::vector<absl::string_view> fields = absl::StrSplit(line, absl::MaxSplits(' ', 3));
  if (fields.size() < 3) return "";
  std::string text = fields.size() == 4 ? std::string(fields[3]) : "";
  if (fields[2] != "P") text += "\n";
  return text;
}

// The kind of compressed or plain tar ADD unpacks, by its first bytes.
bool LooksLikeArchive(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char head[512] = {};
  in.read(head, sizeof head);
  std::streamsize got = in.gcount();
  if (got >= 2 && static_cast<unsigned char>(head[0]) == 0x1f &&
      static_cast<unsigned char>(head[1]) == 0x8b) {
    return true;
  }
  if (got >= 4 && std::string(head, 4) == "\x28\xb5\x2f\xfd") return true;  // zstd
  return got >= 262 && std::string(head + 257, 5) == "ustar";
}

bool DirectoryEmpty(const std::string& path) {
  absl::StatusOr<std::vector<std::string>> names = base::ListDirectory(path);
  return names.ok() && names->empty();
}

}  // namespace

std::optional<int> RunExitCodeOf(const absl::Status& status) {
  auto payload = status.GetPayload(kRunExitCodePayload);
  int code = 0;
  if (!payload.has_value() || !absl::SimpleAtoi(std::string(*payload), &code)) return std::nullopt;
  return code;
}

// One build: the Dockerfile, its stages as they are built, the step counter.
struct Builder::Run {
  struct Stage {
    std::string name;
    nlohmann::json config;  // the whole image config document
    std::vector<images::Descriptor> layers;
    std::string image_id;  // "" until something is recorded (FROM scratch)
    std::map<std::string, std::string> args;
    bool cmd_set = false;  // CMD given in this stage (ENTRYPOINT then keeps it)
  };

  Builder& b;
  const BuildOptions& options;
  const BuildOutput& output;
  const BuildCancelled& cancelled;
  Dockerfile dockerfile;
  std::map<std::string, std::string> global_args;
  std::set<std::string> consumed_args;
  std::vector<Stage> stages;
  int step = 0;
  int steps = 0;
  // `docker commit --change`: instructions change the config only; nothing is cached or
  // recorded per instruction.
  bool commit_mode = false;

  Run(Builder& builder, const BuildOptions& options_in, const BuildOutput& output_in,
      const BuildCancelled& cancelled_in)
      : b(builder), options(options_in), output(output_in), cancelled(cancelled_in) {}

  bool Cancelled() const { return cancelled && cancelled(); }

  Lookup GlobalLookup() {
    return [this](const std::string& name) -> std::optional<std::string> {
      auto found = global_args.find(name);
      if (found == global_args.end()) return std::nullopt;
      return found->second;
    };
  }

  Lookup StageLookup(const Stage& stage) {
    return [&stage](const std::string& name) -> std::optional<std::string> {
      for (const nlohmann::json& item : stage.config["config"].value("Env", nlohmann::json())) {
        if (!item.is_string()) continue;
        std::string entry = item.get<std::string>();
        if (absl::StartsWith(entry, name + "=")) return entry.substr(name.size() + 1);
      }
      auto found = stage.args.find(name);
      if (found == stage.args.end()) return std::nullopt;
      return found->second;
    };
  }

  nlohmann::json& Config(Stage& stage) {
    nlohmann::json& config = stage.config["config"];
    if (!config.is_object()) config = nlohmann::json::object();
    return config;
  }

  std::vector<std::string> Shell(Stage& stage) {
    const nlohmann::json& shell = Config(stage).value("Shell", nlohmann::json());
    if (shell.is_array() && !shell.empty()) return shell.get<std::vector<std::string>>();
    return {"/bin/sh", "-c"};
  }

  static nlohmann::json EmptyConfig() {
    images::Platform platform = images::HostPlatform();
    return {{"architecture", platform.architecture},
            {"os", platform.os},
            {"config", nlohmann::json::object()},
            {"rootfs", {{"type", "layers"}, {"diff_ids", nlohmann::json::array()}}},
            {"history", nlohmann::json::array()}};
  }

  absl::Status LoadImage(const images::ImageRecord& record, Stage& stage) {
    stage.config = nlohmann::json::parse(record.config_json, nullptr, false);
    if (!stage.config.is_object()) {
      return absl::DataLossError(
          absl::StrCat("image ", record.id.String(), " has no valid config"));
    }
    absl::StatusOr<std::string> manifest = b.content_.ReadAll(record.manifest_digest);
    if (!manifest.ok()) return manifest.status();
    absl::StatusOr<images::ImageManifest> parsed = images::ParseManifest(*manifest);
    if (!parsed.ok()) return parsed.status();
    stage.layers = parsed->layers;
    stage.image_id = record.id.String();
    return absl::OkStatus();
  }

  std::string ParentKey(const Stage& stage) {
    return stage.image_id.empty() ? "scratch" : stage.image_id;
  }

  // A cached result of KEY on STAGE's image: STAGE becomes it.
  bool TryCache(Stage& stage, const std::string& key) {
    if (options.no_cache) return false;
    std::optional<std::string> id = b.cache_.Lookup(ParentKey(stage), key);
    if (!id.has_value()) return false;
    absl::StatusOr<images::ImageRecord> record = b.runtime_.images().Find(*id);
    if (!record.ok()) return false;
    std::map<std::string, std::string> args = stage.args;
    if (!LoadImage(*record, stage).ok()) return false;
    stage.args = std::move(args);
    output(" ---> Using cache\n");
    output(absl::StrCat(" ---> ", ShortId(stage.image_id), "\n"));
    return true;
  }

  std::string TopChainId(const Stage& stage) {
    std::vector<images::Digest> diff_ids;
    for (const nlohmann::json& id : stage.config["rootfs"].value("diff_ids", nlohmann::json())) {
      absl::StatusOr<images::Digest> parsed = images::Digest::Parse(id.get<std::string>());
      if (parsed.ok()) diff_ids.push_back(*parsed);
    }
    std::vector<images::Digest> chain = images::ChainIds(diff_ids);
    return chain.empty() ? "" : chain.back().String();
  }

  // Records STAGE (plus LAYER and a history entry CREATED_BY) as a new image, remembered in
  // the cache under KEY.
  absl::Status Commit(Stage& stage, const std::string& created_by,
                      const std::optional<LayerBlob>& layer, const std::string& key,
                      const std::string& comment = "") {
    std::string parent = ParentKey(stage);
    std::string now = NowText();
    stage.config["created"] = now;
    if (!created_by.empty() || !comment.empty()) {
      nlohmann::json entry = {{"created", now}, {"created_by", created_by}};
      if (!comment.empty()) entry["comment"] = comment;
      if (!layer.has_value()) entry["empty_layer"] = true;
      stage.config["history"].push_back(entry);
    }
    if (layer.has_value()) {
      stage.config["rootfs"]["diff_ids"].push_back(layer->diff_id.String());
      stage.layers.push_back(layer->descriptor);
    }
    std::string config_json = stage.config.dump();
    images::Digest config_digest = images::Digest::Sha256Of(config_json);
    if (absl::StatusOr<int64_t> stored =
            b.content_.IngestBytes(config_digest, config_json, kConfigMediaType);
        !stored.ok()) {
      return stored.status();
    }
    nlohmann::json manifest = {{"schemaVersion", 2},
                               {"mediaType", images::media_type::kOciManifest},
                               {"config",
                                {{"mediaType", kConfigMediaType},
                                 {"digest", config_digest.String()},
                                 {"size", config_json.size()}}},
                               {"layers", nlohmann::json::array()}};
    for (const images::Descriptor& descriptor : stage.layers) {
      manifest["layers"].push_back({{"mediaType", descriptor.media_type},
                                    {"digest", descriptor.digest.String()},
                                    {"size", descriptor.size}});
    }
    std::string manifest_json = manifest.dump();
    images::Digest manifest_digest = images::Digest::Sha256Of(manifest_json);
    if (absl::StatusOr<int64_t> stored = b.content_.IngestBytes(manifest_digest, manifest_json,
                                                                images::media_type::kOciManifest);
        !stored.ok()) {
      return stored.status();
    }
    absl::StatusOr<images::ImageRecord> record =
        b.puller_.UnpackAndRecord(manifest_digest, images::media_type::kOciManifest, {}, {}, {});
    if (!record.ok()) return record.status();
    stage.image_id = record->id.String();
    if (!key.empty()) {
      if (absl::Status cached = b.cache_.Record(parent, key, stage.image_id); !cached.ok()) {
        return cached;
      }
    }
    output(absl::StrCat(" ---> ", ShortId(stage.image_id), "\n"));
    return absl::OkStatus();
  }

  // A metadata step: the cache, else a new image with no layer.
  absl::Status MetadataStep(Stage& stage, const std::string& created_by,
                            const std::function<absl::Status()>& change) {
    if (commit_mode) return change();
    std::string key = created_by;
    if (TryCache(stage, key)) return absl::OkStatus();
    if (absl::Status changed = change(); !changed.ok()) return changed;
    return Commit(stage, created_by, std::nullopt, key);
  }

  // Mounts an active snapshot of STAGE's tree, lets WORK change it, and returns the changes as a
  // layer (nullopt when nothing changed). Nothing of it stays mounted or on disk.
  absl::StatusOr<std::optional<LayerBlob>> MountedStep(
      Stage& stage, const std::function<absl::Status(const std::string& root)>& work) {
    if (b.snapshots_.GetDriver() != snapshotter::Driver::kOverlay) {
      return absl::FailedPreconditionError(
          "builds need the overlay snapshotter; this node uses native snapshots");
    }
    std::string key = absl::StrCat(kSnapshotPrefix, runtime::NewId());
    absl::StatusOr<std::vector<snapshotter::Mount>> mounts =
        b.snapshots_.Prepare(key, TopChainId(stage));
    if (!mounts.ok()) return mounts.status();
    absl::Cleanup remove = [&] { (void)b.snapshots_.Remove(key); };
    absl::StatusOr<base::TempDir> root = base::TempDir::Create("build-root", b.scratch_dir_);
    if (!root.ok()) return root.status();
    {
      absl::StatusOr<snapshotter::ScopedMount> mounted =
          snapshotter::ScopedMount::Create(*mounts, root->Path());
      if (!mounted.ok()) return mounted.status();
      if (absl::Status worked = work(root->Path()); !worked.ok()) return worked;
      if (absl::Status unmounted = mounted->Unmount(); !unmounted.ok()) return unmounted;
    }
    absl::StatusOr<std::string> upper = b.snapshots_.ContentDirectory(key);
    if (!upper.ok()) return upper.status();
    if (DirectoryEmpty(*upper)) return std::optional<LayerBlob>();
    absl::StatusOr<LayerBlob> layer = WriteLayerFromUpperDir(*upper, b.content_);
    if (!layer.ok()) return layer.status();
    return std::optional<LayerBlob>(*layer);
  }

  // A read-only view of STAGE's tree while WORK runs.
  absl::Status WithView(const Stage& stage,
                        const std::function<absl::Status(const std::string& root)>& work) {
    std::string chain = TopChainId(stage);
    absl::StatusOr<base::TempDir> root = base::TempDir::Create("build-view", b.scratch_dir_);
    if (!root.ok()) return root.status();
    if (chain.empty()) return work(root->Path());
    std::string key = absl::StrCat(kSnapshotPrefix, "view-", runtime::NewId());
    absl::StatusOr<std::vector<snapshotter::Mount>> mounts = b.snapshots_.View(key, chain);
    if (!mounts.ok()) return mounts.status();
    absl::Cleanup remove = [&] { (void)b.snapshots_.Remove(key); };
    absl::StatusOr<snapshotter::ScopedMount> mounted =
        snapshotter::ScopedMount::Create(*mounts, root->Path());
    if (!mounted.ok()) return mounted.status();
    return work(root->Path());
  }

  absl::Status EnsureImage(Stage& stage) {
    if (!stage.image_id.empty()) return absl::OkStatus();
    return Commit(stage, "", std::nullopt, "");
  }

  absl::StatusOr<images::ImageRecord> FindOrPull(const std::string& reference) {
    if (!options.pull) {
      absl::StatusOr<images::ImageRecord> found = b.runtime_.images().Find(reference);
      if (found.ok() || !absl::IsNotFound(found.status())) return found;
    }
    absl::StatusOr<images::Reference> parsed = images::ParseReference(reference);
    if (!parsed.ok()) return parsed.status();
    images::Credentials credentials;
    auto configured = options.credentials.find(parsed->domain);
    if (configured != options.credentials.end()) credentials = configured->second;
    output(absl::StrCat("Pulling ", parsed->String(), "\n"));
    return b.runtime_.images().Pull(reference, credentials);
  }

  // Docker's "Step N/M : INSTRUCTION".
  void StepLine(const Instruction& instruction) {
    output(absl::StrCat("Step ", ++step, "/", steps, " : ", instruction.Text(), "\n"));
  }

  absl::Status From(const ::kapal::builder::Stage& parsed, Stage& stage) {
    StepLine(parsed.from);
    absl::StatusOr<std::string> base = ExpandWord(parsed.base, GlobalLookup(), dockerfile.escape);
    if (!base.ok()) return LineError(parsed.from, base.status());
    if (std::optional<std::string> platform = parsed.from.Flag("platform")) {
      if (*platform != images::HostPlatform().String()) {
        return LineError(parsed.from, absl::InvalidArgumentError(absl::StrCat(
                                          "--platform=", *platform, " is not this node's (",
                                          images::HostPlatform().String(), ")")));
      }
    }
    std::string lower = absl::AsciiStrToLower(*base);
    for (const Stage& earlier : stages) {
      if (!earlier.name.empty() && earlier.name == lower) {
        stage.config = earlier.config;
        stage.layers = earlier.layers;
        stage.image_id = earlier.image_id;
        output(absl::StrCat(" ---> ", ShortId(stage.image_id), "\n"));
        return absl::OkStatus();
      }
    }
    if (lower == "scratch") {
      stage.config = EmptyConfig();
      output(" ---> \n");
      return absl::OkStatus();
    }
    absl::StatusOr<images::ImageRecord> image = FindOrPull(*base);
    if (!image.ok()) return LineError(parsed.from, image.status());
    if (absl::Status loaded = LoadImage(*image, stage); !loaded.ok()) return loaded;
    output(absl::StrCat(" ---> ", ShortId(stage.image_id), "\n"));
    // The base image's ONBUILD triggers run now, and are not inherited.
    nlohmann::json triggers = Config(stage).value("OnBuild", nlohmann::json());
    if (triggers.is_array() && !triggers.empty()) {
      Config(stage)["OnBuild"] = nullptr;
      output(absl::StrCat("# Executing ", triggers.size(), " build trigger",
                          triggers.size() == 1 ? "" : "s", "\n"));
      for (const nlohmann::json& trigger : triggers) {
        if (!trigger.is_string()) continue;
        absl::StatusOr<Instruction> instruction =
            ParseInstructionLine(trigger.get<std::string>(), dockerfile.escape);
        if (!instruction.ok()) return instruction.status();
        if (absl::Status ran = Execute(stage, *instruction, /*counted=*/false); !ran.ok()) {
          return ran;
        }
      }
    }
    return absl::OkStatus();
  }

  static absl::Status LineError(const Instruction& instruction, const absl::Status& status) {
    if (absl::StartsWith(status.message(), "Dockerfile line")) return status;
    absl::Status located(status.code(), absl::StrCat("Dockerfile line ", instruction.line, " (",
                                                     instruction.keyword, "): ", status.message()));
    // Facts on the status (a RUN's exit code) stay.
    status.ForEachPayload([&located](absl::string_view type, const absl::Cord& payload) {
      located.SetPayload(type, payload);
    });
    return located;
  }

  absl::StatusOr<std::string> Expand(Stage& stage, const std::string& text) {
    return ExpandWord(text, StageLookup(stage), dockerfile.escape);
  }

  // The command of RUN, CMD and ENTRYPOINT: the exec form as it is, the shell form through
  // the stage's SHELL.
  std::vector<std::string> CommandOf(Stage& stage, const Instruction& instruction) {
    if (instruction.json.has_value()) return *instruction.json;
    std::vector<std::string> argv = Shell(stage);
    argv.push_back(instruction.rest);
    return argv;
  }

  absl::Status Execute(Stage& stage, const Instruction& instruction, bool counted = true) {
    if (Cancelled()) return absl::CancelledError("the build was cancelled");
    if (counted) {
      StepLine(instruction);
    } else {
      output(absl::StrCat("Step ", instruction.Text(), " (trigger)\n"));
    }
    absl::Status done = Dispatch(stage, instruction);
    return done.ok() ? done : LineError(instruction, done);
  }

  absl::Status Dispatch(Stage& stage, const Instruction& in) {
    const std::string& keyword = in.keyword;
    if (keyword == "ENV" || keyword == "LABEL") {
      absl::StatusOr<std::vector<Assignment>> pairs =
          ParseAssignments(in, StageLookup(stage), dockerfile.escape);
      if (!pairs.ok()) return pairs.status();
      std::vector<std::string> shown;
      for (const Assignment& pair : *pairs) {
        shown.push_back(absl::StrCat(pair.name, "=", pair.value));
      }
      return MetadataStep(
          stage, absl::StrCat(kNop, " ", keyword, " ", absl::StrJoin(shown, " ")), [&] {
            nlohmann::json& config_now = Config(stage);
            for (const Assignment& pair : *pairs) {
              if (keyword == "LABEL") {
                config_now["Labels"][pair.name] = pair.value;
                continue;
              }
              nlohmann::json env = nlohmann::json::array();
              for (const nlohmann::json& item : config_now.value("Env", nlohmann::json())) {
                if (!absl::StartsWith(item.get<std::string>(), pair.name + "=")) {
                  env.push_back(item);
                }
              }
              env.push_back(pair.name + "=" + pair.value);
              config_now["Env"] = env;
            }
            return absl::OkStatus();
          });
    }
    if (keyword == "ARG") {
      absl::StatusOr<std::vector<Assignment>> pairs =
          ParseAssignments(in, StageLookup(stage), dockerfile.escape);
      if (!pairs.ok()) return pairs.status();
      std::vector<std::string> shown;
      for (const Assignment& pair : *pairs) {
        std::optional<std::string> value;
        if (auto given = options.build_args.find(pair.name); given != options.build_args.end()) {
          value = given->second;
          consumed_args.insert(pair.name);
        } else if (pair.has_value) {
          value = pair.value;
        } else if (auto global = global_args.find(pair.name); global != global_args.end()) {
          value = global->second;
        }
        if (value.has_value()) stage.args[pair.name] = *value;
        shown.push_back(value.has_value() ? absl::StrCat(pair.name, "=", *value) : pair.name);
      }
      return MetadataStep(stage, absl::StrCat(kNop, " ARG ", absl::StrJoin(shown, " ")),
                          [] { return absl::OkStatus(); });
    }
    if (keyword == "USER" || keyword == "STOPSIGNAL") {
      absl::StatusOr<std::string> value = Expand(stage, in.rest);
      if (!value.ok()) return value.status();
      if (value->empty()) return absl::InvalidArgumentError(keyword + " needs an argument");
      return MetadataStep(stage, absl::StrCat(kNop, " ", keyword, " ", *value), [&] {
        Config(stage)[keyword == "USER" ? "User" : "StopSignal"] = *value;
        return absl::OkStatus();
      });
    }
    if (keyword == "CMD" || keyword == "ENTRYPOINT") {
      std::vector<std::string> command = CommandOf(stage, in);
      return MetadataStep(stage, absl::StrCat(kNop, " ", keyword, " ", JsonText(command)), [&] {
        nlohmann::json& config_now = Config(stage);
        if (keyword == "CMD") {
          config_now["Cmd"] = command;
          stage.cmd_set = true;
        } else {
          config_now["Entrypoint"] = command;
          // An ENTRYPOINT resets a Cmd inherited from the base image.
          if (!stage.cmd_set) config_now["Cmd"] = nullptr;
        }
        return absl::OkStatus();
      });
    }
    if (keyword == "SHELL") {
      if (!in.json.has_value() || in.json->empty()) {
        return absl::InvalidArgumentError("SHELL requires the arguments to be in JSON form");
      }
      return MetadataStep(stage, absl::StrCat(kNop, " SHELL ", JsonText(*in.json)), [&] {
        Config(stage)["Shell"] = *in.json;
        return absl::OkStatus();
      });
    }
    if (keyword == "EXPOSE") return Expose(stage, in);
    if (keyword == "VOLUME") {
      std::vector<std::string> paths;
      if (in.json.has_value()) {
        paths = *in.json;
      } else {
        absl::StatusOr<std::vector<std::string>> words =
            ExpandWords(in.rest, StageLookup(stage), dockerfile.escape);
        if (!words.ok()) return words.status();
        paths = *words;
      }
      if (paths.empty()) return absl::InvalidArgumentError("VOLUME needs at least one path");
      return MetadataStep(stage, absl::StrCat(kNop, " VOLUME ", JsonText(paths)), [&] {
        for (const std::string& path : paths) {
          Config(stage)["Volumes"][path] = nlohmann::json::object();
        }
        return absl::OkStatus();
      });
    }
    if (keyword == "HEALTHCHECK") return Healthcheck(stage, in);
    if (keyword == "ONBUILD") {
      absl::StatusOr<Instruction> trigger = ParseInstructionLine(in.rest, dockerfile.escape);
      if (!trigger.ok()) return trigger.status();
      if (trigger->keyword == "ONBUILD" || trigger->keyword == "FROM" ||
          trigger->keyword == "MAINTAINER") {
        return absl::InvalidArgumentError(
            absl::StrCat(trigger->keyword, " isn't allowed as an ONBUILD trigger"));
      }
      return MetadataStep(stage, absl::StrCat(kNop, " ONBUILD ", in.rest), [&] {
        Config(stage)["OnBuild"].push_back(in.rest);
        return absl::OkStatus();
      });
    }
    if (keyword == "MAINTAINER") {
      return MetadataStep(stage, absl::StrCat(kNop, " MAINTAINER ", in.rest), [&] {
        stage.config["author"] = in.rest;
        return absl::OkStatus();
      });
    }
    if (keyword == "WORKDIR") return Workdir(stage, in);
    if (keyword == "RUN") return RunStep(stage, in);
    if (keyword == "COPY" || keyword == "ADD") return CopyStep(stage, in);
    return absl::InvalidArgumentError(absl::StrCat("unknown instruction: ", keyword));
  }

  absl::Status Expose(Stage& stage, const Instruction& in) {
    absl::StatusOr<std::vector<std::string>> words =
        ExpandWords(in.rest, StageLookup(stage), dockerfile.escape);
    if (!words.ok()) return words.status();
    std::vector<std::string> ports;
    for (const std::string& word : *words) {
      std::pair<std::string, std::string> parts = absl::StrSplit(word, absl::MaxSplits('/', 1));
      std::string protocol = parts.second.empty() ? "tcp" : absl::AsciiStrToLower(parts.second);
      if (protocol != "tcp" && protocol != "udp" && protocol != "sctp") {
        return absl::InvalidArgumentError(absl::StrCat("invalid proto: ", parts.second));
      }
      std::pair<std::string, std::string> range = absl::StrSplit(parts.first, '-');
      int first = 0, last = 0;
      if (!absl::SimpleAtoi(range.first, &first) ||
          (!range.second.empty() && !absl::SimpleAtoi(range.second, &last)) || first <= 0 ||
          first > 65535) {
        return absl::InvalidArgumentError(absl::StrCat("invalid containerPort: ", word));
      }
      if (range.second.empty()) last = first;
      if (last < first || last > 65535) {
        return absl::InvalidArgumentError(absl::StrCat("invalid port range: ", word));
      }
      for (int port = first; port <= last; ++port) {
        ports.push_back(absl::StrCat(port, "/", protocol));
      }
    }
    if (ports.empty()) return absl::InvalidArgumentError("EXPOSE needs at least one port");
    std::sort(ports.begin(), ports.end());  // as Docker records them
    return MetadataStep(stage, absl::StrCat(kNop, " EXPOSE ", absl::StrJoin(ports, " ")), [&] {
      for (const std::string& port : ports) {
        Config(stage)["ExposedPorts"][port] = nlohmann::json::object();
      }
      return absl::OkStatus();
    });
  }

  absl::Status Healthcheck(Stage& stage, const Instruction& in) {
    nlohmann::json check = nlohmann::json::object();
    absl::string_view rest = in.rest;
    std::string first_word = absl::AsciiStrToUpper(rest.substr(0, rest.find_first_of(" \t")));
    if (first_word == "NONE") {
      if (!in.flags.empty()) {
        return absl::InvalidArgumentError("HEALTHCHECK NONE takes no options");
      }
      check["Test"] = {"NONE"};
    } else if (first_word == "CMD") {
      absl::string_view command = absl::StripAsciiWhitespace(rest.substr(3));
      if (command.empty()) return absl::InvalidArgumentError("HEALTHCHECK CMD needs a command");
      std::optional<std::vector<std::string>> exec_form;
      if (absl::StartsWith(command, "[")) {
        nlohmann::json parsed = nlohmann::json::parse(command, nullptr, false);
        if (parsed.is_array()) exec_form = parsed.get<std::vector<std::string>>();
      }
      nlohmann::json test = nlohmann::json::array();
      if (exec_form.has_value()) {
        test.push_back("CMD");
        for (const std::string& word : *exec_form) test.push_back(word);
      } else {
        test = {"CMD-SHELL", std::string(command)};
      }
      check["Test"] = test;
      for (const auto& [flag, value] : in.flags) {
        if (flag == "retries") {
          int retries = 0;
          if (!absl::SimpleAtoi(value, &retries) || retries < 0) {
            return absl::InvalidArgumentError(absl::StrCat("invalid --retries ", value));
          }
          check["Retries"] = retries;
          continue;
        }
        const std::map<std::string, std::string> kDurations = {
            {"interval", "Interval"}, {"timeout", "Timeout"}, {"start-period", "StartPeriod"}};
        auto field = kDurations.find(flag);
        if (field == kDurations.end()) {
          return absl::InvalidArgumentError(absl::StrCat("unknown flag: --", flag));
        }
        absl::StatusOr<int64_t> nanos = ParseDuration(value);
        if (!nanos.ok()) return nanos.status();
        check[field->second] = *nanos;
      }
    } else {
      return absl::InvalidArgumentError("HEALTHCHECK takes NONE or CMD");
    }
    return MetadataStep(stage, absl::StrCat(kNop, " HEALTHCHECK &", check.dump()), [&] {
      Config(stage)["Healthcheck"] = check;
      return absl::OkStatus();
    });
  }

  std::string AbsoluteIn(Stage& stage, const std::string& path) {
    if (absl::StartsWith(path, "/")) return path;
    std::string base = Config(stage).value("WorkingDir", std::string("/"));
    if (base.empty()) base = "/";
    return absl::StrCat(base, absl::EndsWith(base, "/") ? "" : "/", path);
  }

  absl::Status Workdir(Stage& stage, const Instruction& in) {
    absl::StatusOr<std::string> value = Expand(stage, in.rest);
    if (!value.ok()) return value.status();
    if (value->empty()) return absl::InvalidArgumentError("WORKDIR needs a path");
    std::string path = AbsoluteIn(stage, *value);
    if (commit_mode) {
      Config(stage)["WorkingDir"] = path;
      return absl::OkStatus();
    }
    std::string key = absl::StrCat(kNop, " WORKDIR ", path);
    if (TryCache(stage, key)) return absl::OkStatus();
    Config(stage)["WorkingDir"] = path;
    // Docker creates the directory; a layer only when it was not there.
    absl::StatusOr<std::optional<LayerBlob>> layer =
        MountedStep(stage, [&](const std::string& root) {
          return MakeDirectoriesInRoot(root, path, std::nullopt).status();
        });
    if (!layer.ok()) return layer.status();
    return Commit(stage, key, *layer, key);
  }

  absl::Status RunStep(Stage& stage, const Instruction& in) {
    if (!in.flags.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("RUN --", in.flags.front().first,
                       " needs BuildKit; kapal's builder is Docker's classic one"));
    }
    std::vector<std::string> argv = CommandOf(stage, in);
    // Build arguments reach RUN's environment (ENV wins), and so its cache key.
    std::vector<std::string> arg_env;
    for (const auto& [name, value] : stage.args) {
      bool in_env = false;
      for (const nlohmann::json& item : Config(stage).value("Env", nlohmann::json())) {
        if (absl::StartsWith(item.get<std::string>(), name + "=")) in_env = true;
      }
      if (!in_env) arg_env.push_back(absl::StrCat(name, "=", value));
    }
    std::string created_by = absl::StrJoin(argv, " ");
    if (!arg_env.empty()) {
      created_by =
          absl::StrCat("|", arg_env.size(), " ", absl::StrJoin(arg_env, " "), " ", created_by);
    }
    if (TryCache(stage, created_by)) return absl::OkStatus();
    if (absl::Status ensured = EnsureImage(stage); !ensured.ok()) return ensured;
    absl::StatusOr<LayerBlob> layer = RunContainer(stage, argv, arg_env);
    if (!layer.ok()) return layer.status();
    return Commit(stage, created_by, *layer, created_by);
  }

  absl::StatusOr<LayerBlob> RunContainer(Stage& stage, const std::vector<std::string>& argv,
                                         const std::vector<std::string>& env) {
    if (b.snapshots_.GetDriver() != snapshotter::Driver::kOverlay) {
      return absl::FailedPreconditionError(
          "builds need the overlay snapshotter; this node uses native snapshots");
    }
    std::string suffix = runtime::NewId().substr(0, 12);
    runtime::v1::PodSandboxConfig pod;
    pod.mutable_metadata()->set_name("build-" + suffix);
    pod.mutable_metadata()->set_namespace_(kBuildNamespace);
    pod.mutable_metadata()->set_uid(runtime::NewId());
    pod.set_hostname(suffix);
    (*pod.mutable_labels())[kBuildLabel] = "step";
    const std::string& network = options.network_mode;
    if (network == "host") {
      pod.mutable_linux()->mutable_security_context()->mutable_namespace_options()->set_network(
          runtime::v1::NODE);
    } else if (network == "none") {
      (*pod.mutable_annotations())[runtime::kNetworkAnnotation] = runtime::kNoNetwork;
    } else if (!network.empty() && network != "default" && network != "bridge") {
      return absl::InvalidArgumentError(absl::StrCat(
          "network mode \"", network, "\" is not supported for builds (default, host or none)"));
    }
    absl::StatusOr<std::string> pod_id = b.runtime_.RunPod(pod, "");
    if (!pod_id.ok()) return pod_id.status();
    absl::Cleanup remove_pod = [&] {
      (void)b.runtime_.StopPod(*pod_id);
      (void)b.runtime_.RemovePod(*pod_id);
    };
    runtime::v1::ContainerConfig container;
    container.mutable_metadata()->set_name("step");
    container.mutable_image()->set_image(stage.image_id);
    for (const std::string& word : argv) container.add_command(word);
    for (const std::string& item : env) {
      std::pair<std::string, std::string> kv = absl::StrSplit(item, absl::MaxSplits('=', 1));
      runtime::v1::KeyValue* added = container.add_envs();
      added->set_key(kv.first);
      added->set_value(kv.second);
    }
    (*container.mutable_labels())[kBuildLabel] = "step";
    container.mutable_linux()->mutable_security_context()->mutable_seccomp()->set_profile_type(
        runtime::v1::SecurityProfile::RuntimeDefault);
    absl::StatusOr<std::string> id = b.runtime_.CreateContainer(*pod_id, container);
    if (!id.ok()) return id.status();
    output(absl::StrCat(" ---> Running in ", id->substr(0, 12), "\n"));
    absl::StatusOr<runtime::Container> created = b.runtime_.GetContainer(*id);
    if (!created.ok()) return created.status();
    if (absl::Status started = b.runtime_.StartContainer(*id); !started.ok()) {
      return absl::FailedPreconditionError(absl::StrCat("The command '", absl::StrJoin(argv, " "),
                                                        "' could not start: ", started.message()));
    }
    // RUN's output, as the container writes it.
    runtime::LogTail log(created->log_path);
    auto pump = [&] {
      std::string text;
      for (const std::string& line : log.NewLines()) text += LogText(line);
      if (!text.empty()) output(text);
    };
    std::optional<runtime::Container> ended;
    while (!ended.has_value()) {
      pump();
      if (Cancelled()) {
        (void)b.runtime_.StopContainer(*id, std::chrono::seconds(2));
        return absl::CancelledError("the build was cancelled");
      }
      absl::StatusOr<runtime::Container> waited = b.runtime_.WaitForExit(*id, kWaitSlice);
      if (absl::IsDeadlineExceeded(waited.status())) continue;
      if (!waited.ok()) return waited.status();
      ended = *waited;
    }
    pump();
    if (ended->exit_code != 0) {
      absl::Status failed = absl::FailedPreconditionError(
          absl::StrCat("The command '", absl::StrJoin(argv, " "),
                       "' returned a non-zero code: ", ended->exit_code));
      failed.SetPayload(kRunExitCodePayload, absl::Cord(absl::StrCat(ended->exit_code)));
      return failed;
    }
    absl::StatusOr<std::string> upper = b.snapshots_.ContentDirectory(ended->snapshot_key);
    if (!upper.ok()) return upper.status();
    absl::StatusOr<LayerBlob> layer =
        WriteLayerFromUpperDir(*upper, b.content_, RuntimeMountPoints());
    if (!layer.ok()) return layer.status();
    output(absl::StrCat("Removing intermediate container ", id->substr(0, 12), "\n"));
    return layer;
  }

  // ADD's URL sources, fetched into DIRECTORY under the URL's last path part.
  absl::StatusOr<std::string> Download(const std::string& url, const std::string& directory) {
    std::string path = url.substr(url.find("://") + 3);
    path = path.substr(0, path.find_first_of("?#"));
    std::string name = path.substr(path.rfind('/') + 1);
    if (name.empty() || path.find('/') == std::string::npos) name = "download";
    std::string file = directory + "/" + name;
    std::ofstream out(file, std::ios::binary);
    int code = 0;
    images::HttpOptions http;
    absl::Status fetched = images::HttpRequest(
        "GET", url, {}, nullptr, http,
        [&](int status, std::multimap<std::string, std::string>) { code = status; },
        [&](const char* data, size_t size) {
          if (code != 200) return true;
          out.write(data, static_cast<std::streamsize>(size));
          return static_cast<bool>(out);
        });
    if (!fetched.ok()) return fetched;
    if (code != 200) {
      return absl::FailedPreconditionError(
          absl::StrCat("ADD failed: fetching ", url, ": HTTP status ", code));
    }
    out.close();
    if (!out) return absl::InternalError("ADD failed: writing " + file);
    ::chmod(file.c_str(), 0600);
    return name;
  }

  absl::Status CopyStep(Stage& stage, const Instruction& in) {
    bool add = in.keyword == "ADD";
    std::optional<std::string> from = in.Flag("from");
    std::optional<std::string> chown = in.Flag("chown");
    for (const auto& [flag, value] : in.flags) {
      if (flag != "from" && flag != "chown") {
        return absl::InvalidArgumentError(absl::StrCat(
            in.keyword, " --", flag, " is not supported by kapal's (classic) builder"));
      }
    }
    if (add && from.has_value()) return absl::InvalidArgumentError("ADD has no --from");
    std::vector<std::string> words;
    if (in.json.has_value()) {
      words = *in.json;
    } else {
      for (const std::string& raw : SplitRawWords(in.rest, dockerfile.escape)) {
        absl::StatusOr<std::string> word = Expand(stage, raw);
        if (!word.ok()) return word.status();
        words.push_back(*word);
      }
    }
    if (words.size() < 2) {
      return absl::InvalidArgumentError(in.keyword + " requires at least two arguments");
    }
    std::string destination = AbsoluteIn(stage, words.back());
    if (absl::EndsWith(words.back(), "/") && !absl::EndsWith(destination, "/")) destination += "/";
    std::vector<std::string> patterns(words.begin(), words.end() - 1);

    // Where the sources come from: the context, another stage or image, or URLs (ADD).
    std::optional<base::TempDir> downloads;
    std::string from_id;
    std::optional<Stage> from_stage;
    if (from.has_value()) {
      std::string lower = absl::AsciiStrToLower(*from);
      int index = -1;
      bool numeric = absl::SimpleAtoi(lower, &index);
      for (size_t i = 0; i < stages.size(); ++i) {
        if ((numeric && static_cast<int>(i) == index) ||
            (!stages[i].name.empty() && stages[i].name == lower)) {
          from_stage = stages[i];
        }
      }
      if (!from_stage.has_value()) {
        absl::StatusOr<images::ImageRecord> image = FindOrPull(*from);
        if (!image.ok()) return image.status();
        Stage loaded;
        if (absl::Status ok = LoadImage(*image, loaded); !ok.ok()) return ok;
        from_stage = std::move(loaded);
      }
      from_id = from_stage->image_id.empty() ? "scratch" : from_stage->image_id;
    } else if (add) {
      for (std::string& pattern : patterns) {
        if (!absl::StartsWith(pattern, "http://") && !absl::StartsWith(pattern, "https://")) {
          continue;
        }
        if (!downloads.has_value()) {
          absl::StatusOr<base::TempDir> made = base::TempDir::Create("build-add", b.scratch_dir_);
          if (!made.ok()) return made.status();
          downloads.emplace(std::move(*made));
        }
        absl::StatusOr<std::string> name = Download(pattern, downloads->Path());
        if (!name.ok()) return name.status();
        pattern = *name;
      }
      if (downloads.has_value() && patterns.size() != 1) {
        return absl::InvalidArgumentError("ADD of a URL takes one source");
      }
    }

    auto with_sources = [&](const std::function<absl::Status(const std::string&)>& work) {
      if (from_stage.has_value()) return WithView(*from_stage, work);
      return work(downloads.has_value() ? downloads->Path() : options.context_dir);
    };
    std::string key, created_by;
    absl::Status keyed = with_sources([&](const std::string& source_root) {
      absl::StatusOr<std::vector<std::string>> matched = MatchSources(source_root, patterns);
      if (!matched.ok()) return matched.status();
      absl::StatusOr<std::string> checksum = SourcesChecksum(source_root, *matched);
      if (!checksum.ok()) return checksum.status();
      // As Docker names them in history: dir:, file: or multi: before the checksum.
      std::string kind = "multi";
      struct stat st {};
      if (matched->size() == 1) {
        bool is_dir = ::lstat((source_root + "/" + matched->front()).c_str(), &st) == 0 &&
                      S_ISDIR(st.st_mode);
        kind = is_dir ? "dir" : "file";
      }
      absl::string_view hex = *checksum;
      absl::ConsumePrefix(&hex, "sha256:");
      created_by =
          absl::StrCat(kNop, in.keyword, " ", from_id.empty() ? "" : "--from=" + from_id + " ",
                       chown.has_value() ? "--chown=" + *chown + " " : "", kind, ":", hex, " in ",
                       destination, " ");
      key = created_by;
      return absl::OkStatus();
    });
    if (!keyed.ok()) return keyed;
    if (TryCache(stage, key)) return absl::OkStatus();

    absl::StatusOr<std::optional<LayerBlob>> layer =
        MountedStep(stage, [&](const std::string& root) {
          std::optional<Owner> owner;
          if (chown.has_value()) {
            absl::StatusOr<Owner> resolved = ResolveOwner(root, *chown);
            if (!resolved.ok()) return resolved.status();
            owner = *resolved;
          }
          return with_sources([&](const std::string& source_root) {
            absl::StatusOr<std::vector<std::string>> matched = MatchSources(source_root, patterns);
            if (!matched.ok()) return matched.status();
            if (add && !downloads.has_value()) {
              // ADD unpacks a local tar archive into the destination directory.
              std::vector<std::string> plain;
              for (const std::string& source : *matched) {
                std::string path = source_root + "/" + source;
                struct stat st {};
                if (::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
                    LooksLikeArchive(path)) {
                  absl::StatusOr<std::string> directory =
                      MakeDirectoriesInRoot(root, destination, owner);
                  if (!directory.ok()) return directory.status();
                  absl::StatusOr<images::UnpackedLayer> unpacked =
                      images::ExtractArchive(path, *directory);
                  if (!unpacked.ok()) {
                    return absl::InvalidArgumentError(
                        absl::StrCat("ADD ", source, ": ", unpacked.status().message()));
                  }
                } else {
                  plain.push_back(source);
                }
              }
              if (plain.empty()) return absl::OkStatus();
              return CopyIntoRoot(source_root, plain, root, destination, owner);
            }
            return CopyIntoRoot(source_root, *matched, root, destination, owner);
          });
        });
    if (!layer.ok()) return layer.status();
    return Commit(stage, created_by, *layer, key);
  }

  // commit's and import's --change: Dockerfile instructions that change the config only.
  absl::Status ApplyChanges(Stage& stage, const std::vector<std::string>& changes) {
    commit_mode = true;
    static const std::set<std::string> kAllowed = {"CMD",     "ENTRYPOINT", "ENV",  "EXPOSE",
                                                   "LABEL",   "ONBUILD",    "USER", "VOLUME",
                                                   "WORKDIR", "STOPSIGNAL"};
    for (const std::string& change : changes) {
      absl::StatusOr<Instruction> instruction = ParseInstructionLine(change, '\\');
      if (!instruction.ok()) return instruction.status();
      if (kAllowed.count(instruction->keyword) == 0) {
        return absl::InvalidArgumentError(
            absl::StrCat(instruction->keyword, " is not a valid change command"));
      }
      if (absl::Status applied = Dispatch(stage, *instruction); !applied.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--change \"", change, "\": ", applied.message()));
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::string> ImportTar(const ImportOptions& import) {
    if (!LooksLikeArchive(import.tar_path)) {
      return absl::InvalidArgumentError(
          "the file to import is not a tar archive (plain, gzip or zstd)");
    }
    Stage stage;
    stage.config = EmptyConfig();
    if (absl::Status applied = ApplyChanges(stage, import.changes); !applied.ok()) return applied;
    absl::StatusOr<LayerBlob> layer = WriteLayerFromTar(import.tar_path, b.content_);
    if (!layer.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("the imported file is not a tar: ", layer.status().message()));
    }
    std::string comment = import.comment.empty() ? "Imported from -" : import.comment;
    if (absl::Status committed = Commit(stage, "", *layer, "", comment); !committed.ok()) {
      if (committed.code() == absl::StatusCode::kInvalidArgument ||
          committed.code() == absl::StatusCode::kDataLoss) {
        return absl::InvalidArgumentError(
            absl::StrCat("the imported file is not a usable tar: ", committed.message()));
      }
      return committed;
    }
    if (!import.reference.empty()) {
      absl::StatusOr<images::ImageRecord> tagged =
          b.runtime_.images().Tag(stage.image_id, import.reference);
      if (!tagged.ok()) return tagged.status();
    }
    return stage.image_id;
  }

  absl::StatusOr<std::string> CommitContainer(const CommitOptions& commit) {
    absl::StatusOr<runtime::Container> container = b.runtime_.GetContainer(commit.container_id);
    if (!container.ok()) return container.status();
    absl::StatusOr<images::ImageRecord> image = b.runtime_.images().Find(container->image_id);
    if (!image.ok()) return image.status();
    Stage stage;
    if (absl::Status loaded = LoadImage(*image, stage); !loaded.ok()) return loaded;
    // What the container was run with becomes the image's, as with Docker.
    nlohmann::json& config = Config(stage);
    const runtime::v1::ContainerConfig& run = container->config;
    if (!run.command().empty()) {
      config["Entrypoint"] = std::vector<std::string>(run.command().begin(), run.command().end());
      config["Cmd"] = std::vector<std::string>(run.args().begin(), run.args().end());
    } else if (!run.args().empty()) {
      config["Cmd"] = std::vector<std::string>(run.args().begin(), run.args().end());
    }
    if (!run.working_dir().empty()) config["WorkingDir"] = run.working_dir();
    for (const runtime::v1::KeyValue& env : run.envs()) {
      nlohmann::json kept = nlohmann::json::array();
      for (const nlohmann::json& item : config.value("Env", nlohmann::json::array())) {
        if (!absl::StartsWith(item.get<std::string>(), env.key() + "=")) kept.push_back(item);
      }
      kept.push_back(env.key() + "=" + env.value());
      config["Env"] = kept;
    }
    if (absl::Status applied = ApplyChanges(stage, commit.changes); !applied.ok()) return applied;
    if (!commit.author.empty()) stage.config["author"] = commit.author;
    absl::StatusOr<std::string> upper = b.snapshots_.ContentDirectory(container->snapshot_key);
    if (!upper.ok()) return upper.status();
    absl::StatusOr<LayerBlob> layer =
        WriteLayerFromUpperDir(*upper, b.content_, RuntimeMountPoints());
    if (!layer.ok()) return layer.status();
    std::vector<std::string> argv(run.command().begin(), run.command().end());
    argv.insert(argv.end(), run.args().begin(), run.args().end());
    if (absl::Status committed =
            Commit(stage, absl::StrJoin(argv, " "), *layer, "", commit.comment);
        !committed.ok()) {
      return committed;
    }
    if (!commit.reference.empty()) {
      absl::StatusOr<images::ImageRecord> tagged =
          b.runtime_.images().Tag(stage.image_id, commit.reference);
      if (!tagged.ok()) return tagged.status();
    }
    return stage.image_id;
  }

  absl::StatusOr<BuildResult> Execute() {
    absl::StatusOr<std::string> text =
        base::ReadFile(options.context_dir + "/" + options.dockerfile);
    if (!text.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("Cannot locate specified Dockerfile: ", options.dockerfile, " (",
                       text.status().message(), ")"));
    }
    absl::StatusOr<Dockerfile> parsed = ParseDockerfile(*text);
    if (!parsed.ok()) return parsed.status();
    dockerfile = std::move(*parsed);
    for (const std::string& tag : options.tags) {
      if (absl::StatusOr<images::Reference> checked = images::ParseReference(tag); !checked.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("invalid tag \"", tag, "\": ", checked.status().message()));
      }
    }
    size_t last = dockerfile.stages.size() - 1;
    if (!options.target.empty()) {
      std::string target = absl::AsciiStrToLower(options.target);
      bool found = false;
      for (size_t i = 0; i < dockerfile.stages.size(); ++i) {
        if (dockerfile.stages[i].name == target) {
          last = i;
          found = true;
        }
      }
      if (!found) {
        return absl::InvalidArgumentError(
            absl::StrCat("failed to reach build target ", options.target, " in Dockerfile"));
      }
    }
    steps = static_cast<int>(dockerfile.global_args.size());
    for (size_t i = 0; i <= last; ++i) {
      steps += 1 + static_cast<int>(dockerfile.stages[i].instructions.size());
    }
    if (!options.labels.empty()) ++steps;

    for (const Instruction& arg : dockerfile.global_args) {
      StepLine(arg);
      absl::StatusOr<std::vector<Assignment>> pairs =
          ParseAssignments(arg, GlobalLookup(), dockerfile.escape);
      if (!pairs.ok()) return pairs.status();
      for (const Assignment& pair : *pairs) {
        if (auto given = options.build_args.find(pair.name); given != options.build_args.end()) {
          global_args[pair.name] = given->second;
          consumed_args.insert(pair.name);
        } else if (pair.has_value) {
          global_args[pair.name] = pair.value;
        }
      }
    }
    for (size_t i = 0; i <= last; ++i) {
      const ::kapal::builder::Stage& parsed_stage = dockerfile.stages[i];
      Stage stage;
      stage.name = parsed_stage.name;
      if (absl::Status from = From(parsed_stage, stage); !from.ok()) return from;
      for (const Instruction& instruction : parsed_stage.instructions) {
        if (absl::Status done = Execute(stage, instruction); !done.ok()) return done;
      }
      if (i == last && !options.labels.empty()) {
        Instruction label;
        label.keyword = "LABEL";
        std::vector<std::string> pairs;
        for (const auto& [name, value] : options.labels) {
          pairs.push_back(
              absl::StrCat(nlohmann::json(name).dump(), "=", nlohmann::json(value).dump()));
        }
        label.rest = absl::StrJoin(pairs, " ");
        if (absl::Status done = Execute(stage, label); !done.ok()) return done;
      }
      if (absl::Status ensured = EnsureImage(stage); !ensured.ok()) return ensured;
      stages.push_back(std::move(stage));
    }
    BuildResult result;
    std::vector<std::string> unused;
    for (const auto& [name, value] : options.build_args) {
      if (consumed_args.count(name) == 0) unused.push_back(name);
    }
    if (!unused.empty()) {
      std::string warning = absl::StrCat("[Warning] One or more build-args [",
                                         absl::StrJoin(unused, " "), "] were not consumed");
      output(warning + "\n");
      result.warnings.push_back(warning);
    }
    const std::string& id = stages.back().image_id;
    output(absl::StrCat("Successfully built ", ShortId(id), "\n"));
    for (const std::string& tag : options.tags) {
      absl::StatusOr<images::ImageRecord> tagged = b.runtime_.images().Tag(id, tag);
      if (!tagged.ok()) return tagged.status();
      std::string shown = tag;
      if (tag.find(':', tag.rfind('/') == std::string::npos ? 0 : tag.rfind('/')) ==
          std::string::npos) {
        shown += ":latest";
      }
      output(absl::StrCat("Successfully tagged ", shown, "\n"));
    }
    result.image_id = id;
    return result;
  }
};

Builder::Builder(runtime::Runtime& runtime, images::Puller& puller, images::ContentStore& content,
                 snapshotter::Snapshotter& snapshots, store::Store& store, std::string scratch_dir,
                 base::Logger& logger)
    : runtime_(runtime),
      puller_(puller),
      content_(content),
      snapshots_(snapshots),
      cache_(store),
      scratch_dir_(std::move(scratch_dir)),
      logger_(logger) {}

absl::StatusOr<BuildResult> Builder::Build(const BuildOptions& options, const BuildOutput& output,
                                           const BuildCancelled& cancelled) {
  if (absl::StrContains(options.dockerfile, "..") || absl::StartsWith(options.dockerfile, "/")) {
    return absl::InvalidArgumentError(absl::StrCat("the Dockerfile path \"", options.dockerfile,
                                                   "\" must be inside the build context"));
  }
  Run run(*this, options, output, cancelled);
  absl::Time start = absl::Now();
  absl::StatusOr<BuildResult> result = run.Execute();
  if (result.ok()) {
    logger_.Info("built ", result->image_id, " in ", absl::FormatDuration(absl::Now() - start),
                 " (", run.step, " steps)");
  } else {
    logger_.Info("build failed after ", run.step, " steps: ", result.status().message());
  }
  return result;
}

absl::StatusOr<std::string> Builder::Commit(const CommitOptions& options) {
  BuildOptions none;
  BuildOutput quiet = [](const std::string&) {};
  BuildCancelled never = nullptr;
  // Frozen while its layer is read, as Docker does by default: what the container writes meanwhile
  // waits instead of landing half in the layer. Thawed again whatever the commit's outcome.
  std::string paused_here;
  if (options.pause) {
    absl::StatusOr<runtime::Container> container = runtime_.GetContainer(options.container_id);
    if (!container.ok()) return container.status();
    if (container->state == runtime::v1::CONTAINER_RUNNING &&
        !runtime_.ContainerPaused(container->id)) {
      if (absl::Status paused = runtime_.PauseContainer(container->id); !paused.ok()) {
        return absl::Status(paused.code(),
                            absl::StrCat("pause the container for the commit (--pause=false "
                                         "skips it): ",
                                         paused.message()));
      }
      paused_here = container->id;
    }
  }
  Run run(*this, none, quiet, never);
  absl::StatusOr<std::string> id = run.CommitContainer(options);
  if (!paused_here.empty()) {
    if (absl::Status resumed = runtime_.ResumeContainer(paused_here); !resumed.ok()) {
      logger_.Warn("cannot unpause container ", paused_here,
                   " after its commit: ", resumed.message());
    }
  }
  if (id.ok()) logger_.Info("committed container ", options.container_id, " as ", *id);
  return id;
}

absl::StatusOr<std::string> Builder::Import(const ImportOptions& options) {
  BuildOptions none;
  BuildOutput quiet = [](const std::string&) {};
  BuildCancelled never = nullptr;
  Run run(*this, none, quiet, never);
  absl::StatusOr<std::string> id = run.ImportTar(options);
  if (!id.ok()) return id;
  logger_.Info("imported ", options.tar_path, " as ", *id);
  runtime_.journal().Publish("image", "import", *id);
  return id;
}

absl::StatusOr<base::TempDir> Builder::UnpackContext(const std::string& tar_path) {
  absl::StatusOr<base::TempDir> directory = base::TempDir::Create("build-context", scratch_dir_);
  if (!directory.ok()) return directory.status();
  struct stat st {};
  if (::stat(tar_path.c_str(), &st) == 0 && st.st_size == 0) return directory;  // no context
  absl::StatusOr<images::UnpackedLayer> unpacked =
      images::ExtractArchive(tar_path, directory->Path());
  if (!unpacked.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the build context is not a valid tar: ", unpacked.status().message()));
  }
  return directory;
}

}  // namespace kapal::builder
