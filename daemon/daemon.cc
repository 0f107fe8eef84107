#include "daemon/daemon.h"

#include <fcntl.h>
#include <grp.h>
#include <grpcpp/grpcpp.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "base/build_info.h"
#include "base/files.h"
#include "base/temp_dir.h"
#include "base/unique_fd.h"
#include "base/unix_socket.h"
#include "builder/builder.h"
#include "cri/build_service.h"
#include "cri/containers_service.h"
#include "cri/image_service.h"
#include "cri/kapal_service.h"
#include "cri/rpc_observer.h"
#include "cri/runtime_service.h"
#include "docker/api.h"
#include "images/content_store.h"
#include "images/image_store.h"
#include "images/puller.h"
#include "metrics/metrics.h"
#include "runtime/host_facts.h"
#include "runtime/images.h"
#include "runtime/runtime.h"
#include "snapshotter/snapshotter.h"
#include "store/store.h"

namespace kapal::daemon {

namespace {

// An exclusive flock on ROOT/kapald.lock, held for the daemon's life. The kernel drops it when
// the process dies, so a crash never leaves a lock that blocks the next start.
absl::StatusOr<base::UniqueFd> LockRoot(const std::string& root) {
  std::string path = absl::StrCat(root, "/kapald.lock");
  base::UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
  if (!fd) return base::ErrnoStatus(errno, "open " + path);
  if (::flock(fd.Get(), LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      char pid[32] = {};
      ssize_t n = ::pread(fd.Get(), pid, sizeof pid - 1, 0);
      std::string holder = n > 0 ? absl::StrCat(" (pid ", std::string(pid, n), ")") : "";
      return absl::FailedPreconditionError(absl::StrCat(
          "another kapald", holder, " is running on root ", root,
          "; two daemons must not share a root: stop it, or give this one another root"));
    }
    return base::ErrnoStatus(errno, "lock " + path);
  }
  std::string pid = std::to_string(::getpid());
  if (::ftruncate(fd.Get(), 0) != 0 || ::pwrite(fd.Get(), pid.data(), pid.size(), 0) < 0) {
    return base::ErrnoStatus(errno, "write " + path);
  }
  return fd;
}

std::string ParentDirectory(const std::string& path) {
  size_t slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

}  // namespace

// Destroyed in reverse order: the server stops before the services and store it uses.
struct Daemon::Parts {
  Config config;
  base::UniqueFd root_lock;
  std::unique_ptr<store::Store> store;
  runtime::HostFacts host;
  metrics::Registry metrics;
  std::unique_ptr<metrics::RpcMetrics> rpc_metrics;
  std::unique_ptr<metrics::HttpExposer> exposer;
  std::string metrics_address;
  std::unique_ptr<images::ContentStore> content;
  std::unique_ptr<snapshotter::Snapshotter> snapshots;
  std::unique_ptr<images::ImageStore> images;
  std::unique_ptr<images::Puller> puller;
  std::unique_ptr<runtime::Images> node_images;
  std::unique_ptr<runtime::Runtime> runtime;
  std::unique_ptr<streaming::Server> streaming;
  std::unique_ptr<builder::Builder> builder;
  std::unique_ptr<docker::Api> docker;
  std::unique_ptr<cri::RuntimeService> runtime_service;
  std::unique_ptr<cri::ImageService> image_service;
  std::unique_ptr<cri::KapalImagesService> kapal_images_service;
  std::unique_ptr<cri::KapalContainersService> kapal_containers_service;
  std::unique_ptr<cri::KapalBuildsService> kapal_builds_service;
  std::unique_ptr<grpc::Server> server;
  bool socket_owned = false;
};

Daemon::Daemon(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

Daemon::~Daemon() { Shutdown(std::chrono::milliseconds(0)); }

const std::string& Daemon::MetricsAddress() const { return parts_->metrics_address; }

absl::StatusOr<std::unique_ptr<Daemon>> Daemon::Start(const Config& config, base::Logger& logger) {
  auto parts = std::make_unique<Parts>();
  parts->config = config;
  // The root holds image content and pod state: not for other users to read.
  for (const std::string& dir : {config.root_dir, config.state_dir}) {
    if (absl::Status made = base::MakeDirectories(dir, 0711); !made.ok()) return made;
  }
  if (absl::Status made = base::MakeDirectories(ParentDirectory(config.socket_path), 0711);
      !made.ok()) {
    return made;
  }
  absl::StatusOr<base::UniqueFd> lock = LockRoot(config.root_dir);
  if (!lock.ok()) return lock.status();
  parts->root_lock = std::move(*lock);
  if (absl::Status claimed = base::ClaimSocketPath(config.socket_path, "grpc.address");
      !claimed.ok())
    return claimed;

  absl::StatusOr<std::unique_ptr<store::Store>> opened =
      store::Store::Open(absl::StrCat(config.root_dir, "/kapal.db"));
  if (!opened.ok()) return opened.status();
  parts->store = std::move(*opened);
  logger.Info("store ", parts->store->Path(), " at schema version ", parts->store->SchemaVersion());

  parts->host = runtime::DetectHostFacts();
  logger.Info(
      "host: cgroup ", runtime::CgroupLayoutName(parts->host.cgroup_layout), ", cgroup driver ",
      runtime::CgroupDriverName(runtime::ResolveCgroupDriver(config.cgroup_driver, parts->host)),
      parts->host.systemd_running ? ", systemd" : ", no systemd",
      parts->host.ip_forward ? ", ip_forward on" : ", ip_forward off");

  metrics::RegisterBuildInfo(parts->metrics, base::kVersion, base::kGitCommit);
  metrics::RegisterProcessMetrics(parts->metrics);
  parts->rpc_metrics = std::make_unique<metrics::RpcMetrics>(parts->metrics);
  if (!config.metrics_address.empty()) {
    absl::StatusOr<std::unique_ptr<metrics::HttpExposer>> exposer =
        metrics::HttpExposer::Start(config.metrics_address, parts->metrics);
    if (!exposer.ok()) return exposer.status();
    parts->exposer = std::move(*exposer);
    parts->metrics_address = parts->exposer->Address();
    logger.Info("metrics on http://", parts->metrics_address, "/metrics");
  }

  absl::StatusOr<std::unique_ptr<images::ContentStore>> content =
      images::ContentStore::Open(config.root_dir + "/content", *parts->store);
  if (!content.ok()) return content.status();
  parts->content = std::move(*content);
  snapshotter::Driver driver = snapshotter::Driver::kOverlay;
  if (config.snapshotter == SnapshotterSetting::kNative ||
      (config.snapshotter == SnapshotterSetting::kAuto &&
       (!snapshotter::OverlaySupported(config.root_dir) ||
        (!config.writable_layers_dir.empty() &&
         (!base::MakeDirectories(config.writable_layers_dir, 0711).ok() ||
          !snapshotter::OverlaySupported(config.writable_layers_dir)))))) {
    driver = snapshotter::Driver::kNative;
  }
  absl::StatusOr<std::unique_ptr<snapshotter::Snapshotter>> snapshots =
      snapshotter::Snapshotter::Open(config.root_dir + "/snapshotter", driver, *parts->store,
                                     config.writable_layers_dir);
  if (!snapshots.ok()) return snapshots.status();
  parts->snapshots = std::move(*snapshots);
  // A pull killed mid-unpack leaves an active snapshot that will never be committed.
  if (absl::Status cleaned = parts->snapshots->CleanUp(images::Puller::kExtractPrefix);
      !cleaned.ok()) {
    return cleaned;
  }
  // Likewise a build killed mid-step (its mounts went with the old mount namespace or are
  // removed with the tree).
  if (absl::Status cleaned = parts->snapshots->CleanUp(builder::Builder::kSnapshotPrefix);
      !cleaned.ok()) {
    return cleaned;
  }
  logger.Info("snapshotter ", driver == snapshotter::Driver::kOverlay ? "overlay" : "native",
              " at ", parts->snapshots->Root());
  parts->images = std::make_unique<images::ImageStore>(*parts->store);
  images::PullOptions pull_options;
  pull_options.max_concurrent_downloads = config.max_concurrent_downloads;
  pull_options.progress_timeout = config.pull_progress_timeout;
  pull_options.stream_min_bytes = config.unpack_while_downloading ? 1 : 0;
  if (!config.parallel_ranges) pull_options.range_parts = 1;
  pull_options.layer_sync =
      config.sync_layers_at_commit ? snapshotter::Sync::kAtCommit : snapshotter::Sync::kDeferred;
  pull_options.hosts = images::RegistryHosts(config.registries);
  parts->puller = std::make_unique<images::Puller>(*parts->content, *parts->snapshots,
                                                   *parts->images, pull_options);
  // Layers committed without waiting for their files, in a boot that ended before the sync
  // that followed: unpacked again before any container mounts them.
  images::Puller::Rebuilt rebuilt = parts->puller->RebuildUnsyncedLayers();
  if (rebuilt.layers > 0) {
    logger.Info("unpacked ", rebuilt.layers,
                " layers again from their blobs: the machine went down before their files were "
                "synced");
  }
  for (const std::string& failure : rebuilt.failures) {
    logger.Error("could not unpack a layer again after the machine went down: ", failure);
  }

  parts->node_images =
      std::make_unique<runtime::Images>(*parts->puller, *parts->images, *parts->content,
                                        *parts->snapshots, parts->metrics, config.root_dir, logger);
  absl::StatusOr<std::unique_ptr<runtime::Runtime>> node =
      runtime::Runtime::Start(parts->config, parts->host, *parts->store, *parts->images,
                              *parts->snapshots, *parts->node_images, parts->metrics, logger);
  if (!node.ok()) return node.status();
  parts->runtime = std::move(*node);
  if (!config.streaming_address.empty()) {
    streaming::ServerOptions streaming_options;
    streaming_options.address = config.streaming_address;
    streaming_options.tls = config.streaming_tls;
    streaming_options.tls_cert_file = config.streaming_tls_cert_file;
    streaming_options.tls_key_file = config.streaming_tls_key_file;
    absl::StatusOr<std::unique_ptr<streaming::Server>> streaming =
        streaming::Server::Start(streaming_options, *parts->runtime, parts->metrics, logger);
    if (!streaming.ok()) return streaming.status();
    parts->streaming = std::move(*streaming);
    logger.Info("streaming server on ", config.streaming_tls ? "https://" : "http://",
                parts->streaming->Address());
  }
  // Scratch space for uploaded archives and build contexts, on the root's filesystem; emptied at
  // each start, since an import or build cut short by a crash leaves its upload behind.
  std::string scratch = config.root_dir + "/tmp";
  if (absl::Status cleared = base::RemoveTree(scratch); !cleared.ok()) return cleared;
  if (absl::Status made = base::MakeDirectories(scratch, 0700); !made.ok()) return made;
  parts->builder =
      std::make_unique<builder::Builder>(*parts->runtime, *parts->puller, *parts->content,
                                         *parts->snapshots, *parts->store, scratch, logger);
  if (!config.docker_address.empty()) {
    docker::ApiOptions docker_options;
    docker_options.scratch_dir = scratch;
    docker_options.socket_path = config.docker_address;
    docker_options.root_dir = config.root_dir;
    docker_options.cni_conf_dir = config.cni_conf_dir;
    docker_options.default_runtime = config.default_runtime;
    docker_options.storage_driver = driver == snapshotter::Driver::kOverlay ? "overlay" : "native";
    docker_options.tcp_address = config.docker_tcp_address;
    docker_options.tls_cert = config.docker_tls_cert;
    docker_options.tls_key = config.docker_tls_key;
    docker_options.tls_ca = config.docker_tls_ca;
    docker_options.allow_plain_tcp = config.docker_allow_plain_tcp;
    if (!config.docker_group.empty()) {
      group* entry = ::getgrnam(config.docker_group.c_str());
      if (entry == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat("docker.group: no group named \"",
                                                       config.docker_group, "\" on this host"));
      }
      docker_options.group = entry->gr_gid;
    }
    if (absl::Status made = base::MakeDirectories(ParentDirectory(config.docker_address), 0711);
        !made.ok()) {
      return made;
    }
    absl::StatusOr<std::unique_ptr<docker::Api>> api =
        docker::Api::Start(docker_options, *parts->runtime, *parts->builder, logger);
    if (!api.ok()) return api.status();
    parts->docker = std::move(*api);
    logger.Info("Docker Engine API 1.41 on unix://", config.docker_address);
    if (!config.docker_tcp_address.empty()) {
      absl::StatusOr<metrics::HostPort> where = metrics::ParseHostPort(config.docker_tcp_address);
      logger.Info("Docker Engine API 1.41 on tcp://", where.ok() ? where->host : "?", ":",
                  parts->docker->TcpPort(),
                  config.docker_tls_ca.empty() ? " (plain, loopback)" : " (mutual TLS)");
    }
  }
  parts->runtime_service =
      std::make_unique<cri::RuntimeService>(*parts->runtime, ConfigToJson(parts->config),
                                            parts->metrics_address, parts->streaming.get(), logger);
  parts->image_service = std::make_unique<cri::ImageService>(*parts->node_images);
  parts->kapal_images_service =
      std::make_unique<cri::KapalImagesService>(*parts->node_images, scratch);
  parts->kapal_containers_service =
      std::make_unique<cri::KapalContainersService>(*parts->runtime, scratch);
  parts->kapal_builds_service = std::make_unique<cri::KapalBuildsService>(*parts->builder, scratch);

  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::StrCat("unix:", config.socket_path),
                           grpc::InsecureServerCredentials());
  builder.RegisterService(parts->runtime_service.get());
  builder.RegisterService(parts->image_service.get());
  builder.RegisterService(parts->kapal_images_service.get());
  builder.RegisterService(parts->kapal_containers_service.get());
  builder.RegisterService(parts->kapal_builds_service.get());
  // Kubelet's default limit; ListImages and ListContainers on a busy node need more than gRPC's
  // 4 MiB.
  builder.SetMaxReceiveMessageSize(16 * 1024 * 1024);
  builder.SetMaxSendMessageSize(16 * 1024 * 1024);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> observers;
  observers.push_back(std::make_unique<cri::RpcObserverFactory>(*parts->rpc_metrics, logger));
  builder.experimental().SetInterceptorCreators(std::move(observers));
  // The socket must be 0660 from the moment it accepts calls, not only after a chmod below:
  // gRPC binds it inside BuildAndStart with the process umask, so the umask says 0660 for that
  // call. Nothing else creates files during start-up, so the process-wide umask is safe to turn.
  mode_t saved_umask = ::umask(0117);
  parts->server = builder.BuildAndStart();
  ::umask(saved_umask);
  if (parts->server == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot serve gRPC on ", config.socket_path));
  }
  parts->socket_owned = true;
  // Root-only: whoever can talk to the socket can run any container as root.
  if (::chown(config.socket_path.c_str(), 0, 0) != 0 ||
      ::chmod(config.socket_path.c_str(), 0660) != 0) {
    absl::Status status = base::ErrnoStatus(errno, "set owner and mode of " + config.socket_path);
    Daemon failed(std::move(parts));
    return status;
  }
  logger.Info("kapald ", base::kVersion, " serving CRI v1 on unix://", config.socket_path);
  return std::unique_ptr<Daemon>(new Daemon(std::move(parts)));
}

void Daemon::Shutdown(std::chrono::milliseconds grace) {
  if (parts_ == nullptr) return;
  // Event streams last as long as their clients: they end first, or Shutdown would wait for them.
  if (parts_->runtime != nullptr) parts_->runtime->EndEventStreams();
  if (parts_->server != nullptr) {
    parts_->server->Shutdown(std::chrono::system_clock::now() + grace);
    parts_->server->Wait();
    parts_->server.reset();
  }
  if (parts_->socket_owned) {
    ::unlink(parts_->config.socket_path.c_str());
    parts_->socket_owned = false;
  }
  parts_->exposer.reset();
  // Sessions end (their processes with them) before the runtime they use goes.
  parts_->docker.reset();
  parts_->streaming.reset();
  // The runtime's exit watcher writes to the store: it stops first.
  parts_->runtime.reset();
  // Layers committed in the last seconds get their sync now, while the store is there to
  // record it (should it fail, the next start in this boot syncs them).
  if (parts_->snapshots != nullptr) (void)parts_->snapshots->SyncDeferred();
  parts_->store.reset();
  parts_.reset();
}

}  // namespace kapal::daemon
