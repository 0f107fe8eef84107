#include "runtime/records.h"

#include <SQLiteCpp/SQLiteCpp.h>

#include <algorithm>
#include <chrono>
#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "base/files.h"

namespace kapal::runtime {

namespace {

absl::StatusOr<runtime::v1::ContainerState> ParseContainerState(const std::string& name) {
  runtime::v1::ContainerState state;
  if (!runtime::v1::ContainerState_Parse(name, &state)) {
    return absl::DataLossError(absl::StrCat("unknown container state \"", name, "\" in store"));
  }
  return state;
}

}  // namespace

void SortNewestFirst(std::vector<Container>& containers) {
  std::sort(containers.begin(), containers.end(),
            [](const Container& a, const Container& b) { return a.created_at > b.created_at; });
}

int64_t NowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string NewId() {
  std::random_device random;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string id;
  for (int i = 0; i < 64; ++i) id += kHex[random() % 16];
  return id;
}

std::string ContainerStateName(runtime::v1::ContainerState state) {
  return runtime::v1::ContainerState_Name(state);
}

std::string ContainerStateWord(runtime::v1::ContainerState state) {
  switch (state) {
    case runtime::v1::CONTAINER_CREATED:
      return "created";
    case runtime::v1::CONTAINER_RUNNING:
      return "running";
    case runtime::v1::CONTAINER_EXITED:
      return "exited";
    default:
      return "unknown";
  }
}

PodNamespaces OwnNamespaces(const runtime::v1::PodSandboxConfig& config) {
  const auto& options = config.linux().security_context().namespace_options();
  PodNamespaces own;
  own.network = options.network() != runtime::v1::NODE;
  own.ipc = options.ipc() != runtime::v1::NODE;
  // A pod on the host's network has the host's name too, as in Kubernetes.
  own.uts = own.network;
  own.pid = options.pid() == runtime::v1::POD;
  own.user = options.has_userns_options() && options.userns_options().mode() == runtime::v1::POD;
  return own;
}

std::string RecordStore::PodDir(const std::string& id) const {
  return absl::StrCat(state_dir_, "/pods/", id);
}

std::string RecordStore::ContainerBundle(const std::string& id) const {
  return absl::StrCat(state_dir_, "/containers/", id);
}

absl::Status RecordStore::SavePod(const Pod& pod) {
  return store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement row(db,
                          "INSERT OR REPLACE INTO pods(id, name, namespace, uid, attempt, state, "
                          "runtime_handler, netns_path, ips, config, created_at, cni_result) "
                          "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)");
    const auto& meta = pod.config.metadata();
    row.bind(1, pod.id);
    row.bind(2, meta.name());
    row.bind(3, meta.namespace_());
    row.bind(4, meta.uid());
    row.bind(5, static_cast<int64_t>(meta.attempt()));
    row.bind(6, pod.ready ? "SANDBOX_READY" : "SANDBOX_NOTREADY");
    row.bind(7, pod.runtime_handler);
    row.bind(8, pod.own.network ? pod.dir + "/net" : "");
    row.bind(9, nlohmann::json(pod.ips).dump());
    std::string blob = pod.config.SerializeAsString();
    row.bind(10, blob.data(), static_cast<int>(blob.size()));
    row.bind(11, pod.created_at);
    row.bind(12, pod.cni_result.is_null() ? "" : pod.cni_result.dump());
    row.exec();
  });
}

absl::Status RecordStore::DeletePod(const std::string& id) {
  return store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement row(db, "DELETE FROM pods WHERE id = ?");
    row.bind(1, id);
    row.exec();
  });
}

absl::Status RecordStore::SaveContainer(const Container& c) {
  return store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement row(
        db,
        "INSERT OR REPLACE INTO containers(id, pod_id, name, attempt, image_id, image_ref, state, "
        "snapshot_key, log_path, shim_pid, exit_code, reason, message, config, created_at, "
        "started_at, finished_at, stop_signal) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
    row.bind(1, c.id);
    row.bind(2, c.pod_id);
    row.bind(3, c.config.metadata().name());
    row.bind(4, static_cast<int64_t>(c.config.metadata().attempt()));
    row.bind(5, c.image_id);
    row.bind(6, c.image_ref);
    row.bind(7, ContainerStateName(c.state));
    row.bind(8, c.snapshot_key);
    row.bind(9, c.log_path);
    row.bind(10, c.shim_pid);
    row.bind(11, c.exit_code);
    row.bind(12, c.reason);
    row.bind(13, c.message);
    std::string blob = c.config.SerializeAsString();
    row.bind(14, blob.data(), static_cast<int>(blob.size()));
    row.bind(15, c.created_at);
    row.bind(16, c.started_at);
    row.bind(17, c.finished_at);
    row.bind(18, c.stop_signal);
    row.exec();
  });
}

absl::Status RecordStore::DeleteContainer(const std::string& id) {
  return store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement row(db, "DELETE FROM containers WHERE id = ?");
    row.bind(1, id);
    row.exec();
  });
}

absl::Status RecordStore::LoadAll(std::vector<Pod>& pods, std::vector<Container>& containers) {
  return store_.WithDatabase([&](SQLite::Database& db) {
    SQLite::Statement pod_rows(
        db, "SELECT id, state, runtime_handler, ips, config, created_at, cni_result FROM pods");
    while (pod_rows.executeStep()) {
      Pod pod;
      pod.id = pod_rows.getColumn(0).getString();
      pod.ready = pod_rows.getColumn(1).getString() == "SANDBOX_READY";
      pod.runtime_handler = pod_rows.getColumn(2).getString();
      nlohmann::json ips = nlohmann::json::parse(pod_rows.getColumn(3).getString(), nullptr, false);
      if (ips.is_array()) pod.ips = ips.get<std::vector<std::string>>();
      SQLite::Column blob = pod_rows.getColumn(4);
      pod.config.ParseFromArray(blob.getBlob(), blob.getBytes());
      pod.created_at = pod_rows.getColumn(5).getInt64();
      std::string cni = pod_rows.getColumn(6).getString();
      if (!cni.empty()) pod.cni_result = nlohmann::json::parse(cni, nullptr, false);
      pod.dir = PodDir(pod.id);
      pod.own = OwnNamespaces(pod.config);
      if (absl::StatusOr<std::string> infra = base::ReadFile(pod.dir + "/infra.pid"); infra.ok()) {
        (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(*infra), &pod.infra_pid);
      }
      pods.push_back(std::move(pod));
    }
    SQLite::Statement rows(db,
                           "SELECT id, pod_id, image_id, image_ref, state, snapshot_key, log_path, "
                           "shim_pid, exit_code, reason, message, config, created_at, started_at, "
                           "finished_at, stop_signal FROM containers");
    while (rows.executeStep()) {
      Container c;
      c.id = rows.getColumn(0).getString();
      c.pod_id = rows.getColumn(1).getString();
      c.image_id = rows.getColumn(2).getString();
      c.image_ref = rows.getColumn(3).getString();
      absl::StatusOr<runtime::v1::ContainerState> state =
          ParseContainerState(rows.getColumn(4).getString());
      c.state = state.ok() ? *state : runtime::v1::CONTAINER_UNKNOWN;
      c.snapshot_key = rows.getColumn(5).getString();
      c.log_path = rows.getColumn(6).getString();
      c.shim_pid = rows.getColumn(7).getInt();
      c.exit_code = rows.getColumn(8).getInt();
      c.reason = rows.getColumn(9).getString();
      c.message = rows.getColumn(10).getString();
      SQLite::Column blob = rows.getColumn(11);
      c.config.ParseFromArray(blob.getBlob(), blob.getBytes());
      c.created_at = rows.getColumn(12).getInt64();
      c.started_at = rows.getColumn(13).getInt64();
      c.finished_at = rows.getColumn(14).getInt64();
      c.stop_signal = rows.getColumn(15).getInt();
      c.bundle = ContainerBundle(c.id);
      containers.push_back(std::move(c));
    }
  });
}

}  // namespace kapal::runtime
