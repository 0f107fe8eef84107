// Streaming benchmark against any CRI endpoint, with one client for all: SPDY/3.1 as crictl and
// kubelet speak it (kapal's own framing code used as a client).
//
//   kapal-stream-bench --registry-port PORT --target NAME,ENDPOINT ...
//
// Per target, in a pod with a busybox httpd serving a MEGABYTES file from the container:
//   - ROUNDS execs of `echo hi`: Exec rpc, connection, upgrade, streams; time to the first byte
//     of stdout and to the exit status (median, p95); ExecSync of the same for reference;
//   - TRANSFERS port-forwarded downloads of the file: MB/s (median, best).
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <thread>

#include "CLI/CLI.hpp"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "api/cri_services.h"
#include "base/unique_fd.h"
#include "bench/busybox_image.h"
#include "streaming/http.h"
#include "streaming/spdy.h"

namespace {

using namespace runtime::v1;  // NOLINT
using Clock = std::chrono::steady_clock;
using kapal::streaming::SpdyConnection;
using kapal::streaming::SpdyEvent;

std::unique_ptr<grpc::ClientContext> Deadline(int seconds = 120) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return context;
}

double Ms(Clock::duration duration) {
  return std::chrono::duration<double, std::milli>(duration).count();
}

double Percentile(std::vector<double> values, double fraction) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  size_t index = static_cast<size_t>(fraction * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

[[noreturn]] void Die(const std::string& what) {
  std::cerr << "stream-bench: " << what << "\n";
  std::exit(1);
}

void Check(const grpc::Status& status, const std::string& what) {
  if (!status.ok()) Die(what + ": " + status.error_message());
}

// Connects to URL and upgrades to SPDY/3.1 with PROTOCOL; the socket, and bytes after the head.
kapal::base::UniqueFd Upgrade(const std::string& url, const std::string& protocol,
                              std::string& early) {
  std::string rest = url.substr(url.find("://") + 3);
  std::string authority = rest.substr(0, rest.find('/'));
  std::string path = rest.substr(rest.find('/'));
  std::string host = authority.substr(0, authority.rfind(':'));
  std::string port = authority.substr(authority.rfind(':') + 1);
  if (absl::StartsWith(host, "[")) host = host.substr(1, host.size() - 2);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  if (::getaddrinfo(host.c_str(), port.c_str(), &hints, &found) != 0) Die("resolve " + url);
  kapal::base::UniqueFd fd(::socket(found->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (::connect(fd.Get(), found->ai_addr, found->ai_addrlen) != 0) Die("connect " + url);
  ::freeaddrinfo(found);
  std::string request = absl::StrCat("POST ", path, " HTTP/1.1\r\nHost: ", authority,
                                     "\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                                     "X-Stream-Protocol-Version: ",
                                     protocol, "\r\nContent-Length: 0\r\n\r\n");
  kapal::streaming::WriteAll(fd.Get(), request);
  std::string head;
  char buffer[4096];
  while (head.find("\r\n\r\n") == std::string::npos) {
    ssize_t n = ::read(fd.Get(), buffer, sizeof buffer);
    if (n <= 0) Die("no upgrade answer from " + url);
    head.append(buffer, static_cast<size_t>(n));
  }
  if (!absl::StartsWith(head, "HTTP/1.1 101")) Die("upgrade refused: " + head.substr(0, 40));
  early = head.substr(head.find("\r\n\r\n") + 4);
  return fd;
}

struct ExecTiming {
  double first_byte_ms = 0, done_ms = 0;
};

ExecTiming TimedExec(RuntimeService::Stub& stub, const std::string& container) {
  auto started = Clock::now();
  ExecRequest request;
  request.set_container_id(container);
  request.add_cmd("echo");
  request.add_cmd("hi");
  request.set_stdout(true);
  request.set_stderr(true);
  ExecResponse response;
  Check(stub.Exec(Deadline().get(), request, &response), "Exec");
  std::string early;
  kapal::base::UniqueFd fd = Upgrade(response.url(), "v4.channel.k8s.io", early);
  SpdyConnection spdy(fd.Get());
  // Client streams have odd ids; the server answers each before it is used.
  std::string opens = spdy.EncodeSynStream(1, {{"streamtype", "error"}});
  opens += spdy.EncodeSynStream(3, {{"streamtype", "stdout"}});
  opens += spdy.EncodeSynStream(5, {{"streamtype", "stderr"}});
  kapal::streaming::WriteAll(fd.Get(), opens);
  ExecTiming timing;
  std::vector<SpdyEvent> events;
  if (!spdy.Consume(early, events).ok()) Die("bad SPDY from the server");
  bool done = false;
  while (!done) {
    for (const SpdyEvent& event : events) {
      if (event.kind == SpdyEvent::Kind::kData && event.stream == 3 && !event.data.empty() &&
          timing.first_byte_ms == 0) {
        timing.first_byte_ms = Ms(Clock::now() - started);
      }
      if (event.kind == SpdyEvent::Kind::kData && event.stream == 1 && event.fin) done = true;
    }
    events.clear();
    if (done) break;
    if (!spdy.ReadEvents(events).ok()) break;
  }
  timing.done_ms = Ms(Clock::now() - started);
  return timing;
}

// Downloads PATH from PORT in POD through one port-forward session; bytes received.
size_t ForwardedDownload(RuntimeService::Stub& stub, const std::string& pod, int port,
                         const std::string& path) {
  PortForwardRequest request;
  request.set_pod_sandbox_id(pod);
  request.add_port(port);
  PortForwardResponse response;
  Check(stub.PortForward(Deadline().get(), request, &response), "PortForward");
  std::string early;
  kapal::base::UniqueFd fd = Upgrade(response.url(), "portforward.k8s.io", early);
  SpdyConnection spdy(fd.Get());
  std::string p = std::to_string(port);
  std::string opens =
      spdy.EncodeSynStream(1, {{"streamtype", "error"}, {"port", p}, {"requestid", "0"}});
  opens += spdy.EncodeSynStream(3, {{"streamtype", "data"}, {"port", p}, {"requestid", "0"}});
  kapal::streaming::WriteAll(fd.Get(), opens);
  // The GET as a DATA frame on stream 3 (8-byte header: stream id, flags and length).
  std::string get = absl::StrCat("GET ", path, " HTTP/1.0\r\n\r\n");
  std::string frame = {0, 0, 0, 3, 0, 0, 0, static_cast<char>(get.size())};
  kapal::streaming::WriteAll(fd.Get(), frame + get);
  size_t received = 0;
  std::vector<SpdyEvent> events;
  if (!spdy.Consume(early, events).ok()) Die("bad SPDY from the server");
  for (;;) {
    bool done = false;
    for (const SpdyEvent& event : events) {
      if (event.kind == SpdyEvent::Kind::kData && event.stream == 3) {
        received += event.data.size();
        done = done || event.fin;
      }
      if (event.kind == SpdyEvent::Kind::kStreamReset) done = true;
    }
    events.clear();
    if (done || !spdy.ReadEvents(events).ok()) break;
  }
  return received;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kapal streaming benchmark"};
  int registry_port = 0;
  int rounds = 30;
  int transfers = 3;
  int megabytes = 100;
  std::vector<std::string> target_specs;
  app.add_option("--registry-port", registry_port, "Registry on 127.0.0.1")->required();
  app.add_option("--rounds", rounds, "Execs per target");
  app.add_option("--transfers", transfers, "Port-forwarded downloads per target");
  app.add_option("--megabytes", megabytes, "Size of the downloaded file");
  app.add_option("--target", target_specs, "NAME,ENDPOINT")->required();
  CLI11_PARSE(app, argc, argv);
  rounds = std::clamp(rounds, 1, 1000);
  transfers = std::clamp(transfers, 1, 20);
  megabytes = std::clamp(megabytes, 1, 1000);

  absl::StatusOr<std::string> pushed = kapal::bench::PushBusyboxImage(registry_port);
  if (!pushed.ok()) Die(std::string(pushed.status().message()));
  std::string image_ref = *pushed;

  std::printf("%-12s %14s %14s %14s %14s %14s\n", "target", "exec 1st byte", "exec done",
              "(p95 done)", "ExecSync", "forward MB/s");
  for (const std::string& spec : target_specs) {
    std::vector<std::string> parts = absl::StrSplit(spec, ',');
    if (parts.size() != 2) Die("--target wants NAME,ENDPOINT");
    auto channel = grpc::CreateChannel(parts[1], grpc::InsecureChannelCredentials());
    auto stub = RuntimeService::NewStub(channel);
    auto images = ImageService::NewStub(channel);
    PullImageRequest pull;
    pull.mutable_image()->set_image(image_ref);
    PullImageResponse pulled;
    Check(images->PullImage(Deadline().get(), pull, &pulled), "PullImage");

    PodSandboxConfig pod_config;
    pod_config.mutable_metadata()->set_name("stream-bench");
    pod_config.mutable_metadata()->set_namespace_("bench");
    pod_config.mutable_metadata()->set_uid("stream-bench-uid");
    RunPodSandboxRequest run_pod;
    *run_pod.mutable_config() = pod_config;
    RunPodSandboxResponse pod;
    Check(stub->RunPodSandbox(Deadline().get(), run_pod, &pod), "RunPodSandbox");
    ContainerConfig web;
    web.mutable_metadata()->set_name("web");
    web.mutable_image()->set_image(image_ref);
    for (const char* part :
         {"/bin/sh", "-c",
          "mkdir -p /tmp/www && busybox dd if=/dev/zero of=/tmp/www/blob bs=1M count=$MB "
          "2>/dev/null && exec busybox httpd -f -p 8080 -h /tmp/www"}) {
      web.add_command(part);
    }
    KeyValue* size = web.add_envs();
    size->set_key("MB");
    size->set_value(std::to_string(megabytes));
    CreateContainerRequest create;
    create.set_pod_sandbox_id(pod.pod_sandbox_id());
    *create.mutable_config() = web;
    *create.mutable_sandbox_config() = pod_config;
    CreateContainerResponse created;
    Check(stub->CreateContainer(Deadline().get(), create, &created), "CreateContainer");
    StartContainerRequest start;
    start.set_container_id(created.container_id());
    StartContainerResponse started;
    Check(stub->StartContainer(Deadline().get(), start, &started), "StartContainer");

    size_t expected = static_cast<size_t>(megabytes) * 1024 * 1024;
    // The file is written and the server listens once a download has all of it (bounded).
    bool ready = false;
    for (int i = 0; i < 100 && !ready; ++i) {
      ready = ForwardedDownload(*stub, pod.pod_sandbox_id(), 8080, "/blob") > expected;
      if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    if (!ready) Die(parts[0] + ": the web server in the pod did not come up");

    TimedExec(*stub, created.container_id());  // warm-up
    std::vector<double> first, done, sync;
    for (int i = 0; i < rounds; ++i) {
      ExecTiming timing = TimedExec(*stub, created.container_id());
      first.push_back(timing.first_byte_ms);
      done.push_back(timing.done_ms);
      auto sync_started = Clock::now();
      ExecSyncRequest exec_sync;
      exec_sync.set_container_id(created.container_id());
      exec_sync.add_cmd("echo");
      exec_sync.add_cmd("hi");
      ExecSyncResponse exec_sync_response;
      Check(stub->ExecSync(Deadline().get(), exec_sync, &exec_sync_response), "ExecSync");
      sync.push_back(Ms(Clock::now() - sync_started));
    }
    std::vector<double> rates;
    for (int i = 0; i < transfers; ++i) {
      auto transfer_started = Clock::now();
      size_t bytes = ForwardedDownload(*stub, pod.pod_sandbox_id(), 8080, "/blob");
      double seconds = std::chrono::duration<double>(Clock::now() - transfer_started).count();
      if (bytes < expected)
        Die(absl::StrCat(parts[0], ": download cut short at ", bytes, " bytes"));
      rates.push_back(static_cast<double>(bytes) / 1e6 / seconds);
    }
    std::printf("%-12s %11.1f ms %11.1f ms %11.1f ms %11.1f ms %8.0f (best %.0f)\n",
                parts[0].c_str(), Percentile(first, 0.5), Percentile(done, 0.5),
                Percentile(done, 0.95), Percentile(sync, 0.5), Percentile(rates, 0.5),
                *std::max_element(rates.begin(), rates.end()));
    std::fflush(stdout);

    StopPodSandboxRequest stop;
    stop.set_pod_sandbox_id(pod.pod_sandbox_id());
    StopPodSandboxResponse stopped;
    Check(stub->StopPodSandbox(Deadline().get(), stop, &stopped), "StopPodSandbox");
    RemovePodSandboxRequest remove;
    remove.set_pod_sandbox_id(pod.pod_sandbox_id());
    RemovePodSandboxResponse removed;
    Check(stub->RemovePodSandbox(Deadline().get(), remove, &removed), "RemovePodSandbox");
  }
  std::printf(
      "(medians of %d execs of `echo hi`; %d downloads of %d MB through port-forward; "
      "one SPDY/3.1 client for all)\n",
      rounds, transfers, megabytes);
  return 0;
}
