// Pull benchmark against any CRI endpoint.
//
//   kapal-pull-bench --registry-port PORT [--image REF --image-bytes N --describe TEXT] ENDPOINT...
//
// Pushes an image of three 50 MB layers of incompressible data (gzip) to the registry on
// 127.0.0.1:PORT (or pulls the image REF already there, of N compressed bytes), then for each
// CRI endpoint pulls it ROUNDS times (removing it before each pull) and prints the median time,
// the range and the throughput. Throughput counts the compressed bytes fetched from the
// registry. Endpoints take turns round by round, so that a disk's or cache's warm-up does not
// favour the one measured last. The last two columns say what the machine's cores did during
// an endpoint's pulls (all processes, from /proc/stat): busy, and idle while waiting for the
// disk (iowait), as shares of cores x pull time; a pull bound by the CPU shows ~100% busy,
// one that waits for the disk shows iowait.
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include "CLI/CLI.hpp"
#include "absl/strings/str_format.h"
#include "api/cri_services.h"
#include "tests/fixtures/registry_fixture.h"

namespace {

using kapal::testing::BuildLayer;
using kapal::testing::Compression;
using kapal::testing::LayerEntry;
using kapal::testing::TestImage;

std::string Noise(size_t bytes, uint64_t seed) {
  std::mt19937_64 random(seed);
  std::string data(bytes, '\0');
  for (size_t i = 0; i + 8 <= bytes; i += 8) {
    uint64_t value = random();
    std::memcpy(&data[i], &value, 8);
  }
  return data;
}

std::unique_ptr<grpc::ClientContext> Deadline(std::chrono::seconds seconds) {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(std::chrono::system_clock::now() + seconds);
  return context;
}

// The machine's CPU time so far, in clock ticks, from /proc/stat's first line.
struct CpuTicks {
  int64_t busy = 0;    // user, nice, system, irq, softirq, steal
  int64_t iowait = 0;  // idle while a task waited for the disk
};

CpuTicks ReadCpuTicks() {
  std::ifstream stat("/proc/stat");
  std::string line;
  std::getline(stat, line);
  std::istringstream fields(line);
  std::string label;
  int64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  fields >> label >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  return {user + nice + system + irq + softirq + steal, iowait};
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kapal pull benchmark"};
  int registry_port = 0;
  int rounds = 3;
  int layer_mb = 50;
  std::vector<std::string> endpoints;
  std::string given_image;
  int64_t given_bytes = 0;
  std::string description;
  app.add_option("--registry-port", registry_port, "Registry on 127.0.0.1")->required();
  app.add_option("--rounds", rounds, "Pulls per endpoint (the median is reported)");
  app.add_option("--layer-mb", layer_mb, "Size of each of the three layers");
  app.add_option("--image", given_image, "Pull this reference instead of building one");
  app.add_option("--image-bytes", given_bytes, "Compressed bytes of --image");
  app.add_option("--describe", description, "What --image is, for the output");
  app.add_option("endpoints", endpoints, "CRI endpoints (unix:///path)")->required();
  CLI11_PARSE(app, argc, argv);

  std::string reference = given_image;
  int64_t bytes = given_bytes;
  if (reference.empty()) {
    auto registry = kapal::testing::RegistryFixture::External(registry_port);
    if (!registry.ok()) {
      std::cerr << registry.status() << "\n";
      return 1;
    }
    TestImage image;
    for (int i = 0; i < 3; ++i) {
      auto layer = BuildLayer({{LayerEntry::Kind::kFile, absl::StrFormat("data%d", i),
                                Noise(static_cast<size_t>(layer_mb) << 20, 1000 + i)}},
                              Compression::kGzip);
      if (!layer.ok()) return 1;
      bytes += static_cast<int64_t>(layer->data.size());
      image.layers.push_back(*layer);
    }
    auto pushed = (*registry)->Push("bench/pull", "3x50mb", image);
    if (!pushed.ok()) {
      std::cerr << pushed.status() << "\n";
      return 1;
    }
    reference = (*registry)->Host() + "/bench/pull:3x50mb";
    description = absl::StrFormat("3 gzip layers of random bytes (stored, not compressed)");
  }
  std::cout << absl::StrFormat("image %s: %s, %.1f MB compressed, median of %d pulls\n", reference,
                               description, bytes / 1e6, rounds);
  std::vector<std::vector<double>> seconds(endpoints.size());
  std::vector<CpuTicks> during(endpoints.size());  // summed over an endpoint's pulls
  for (int round = 0; round < rounds; ++round) {
    for (size_t e = 0; e < endpoints.size(); ++e) {
      auto channel = grpc::CreateChannel(endpoints[e], grpc::InsecureChannelCredentials());
      auto images = runtime::v1::ImageService::NewStub(channel);
      runtime::v1::RemoveImageRequest remove;
      remove.mutable_image()->set_image(reference);
      runtime::v1::RemoveImageResponse removed;
      grpc::Status status =
          images->RemoveImage(Deadline(std::chrono::seconds(60)).get(), remove, &removed);
      if (!status.ok()) {
        std::cerr << endpoints[e] << ": RemoveImage: " << status.error_message() << "\n";
        return 1;
      }
      ::sync();  // the previous pull's writes are not charged to this one
      runtime::v1::PullImageRequest pull;
      pull.mutable_image()->set_image(reference);
      runtime::v1::PullImageResponse pulled;
      CpuTicks ticks_before = ReadCpuTicks();
      auto start = std::chrono::steady_clock::now();
      status = images->PullImage(Deadline(std::chrono::seconds(600)).get(), pull, &pulled);
      double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      CpuTicks ticks_after = ReadCpuTicks();
      during[e].busy += ticks_after.busy - ticks_before.busy;
      during[e].iowait += ticks_after.iowait - ticks_before.iowait;
      if (!status.ok()) {
        std::cerr << endpoints[e] << ": PullImage: " << status.error_message() << "\n";
        return 1;
      }
      seconds[e].push_back(elapsed);
    }
  }
  std::cout << absl::StrFormat("%-64s %8s %14s %8s %6s %7s\n", "endpoint", "seconds", "range",
                               "MB/s", "busy", "iowait");
  double ticks_per_second = static_cast<double>(::sysconf(_SC_CLK_TCK));
  double cores = static_cast<double>(::sysconf(_SC_NPROCESSORS_ONLN));
  for (size_t e = 0; e < endpoints.size(); ++e) {
    std::vector<double>& times = seconds[e];
    double total = 0;
    for (double time : times) total += time;
    double capacity = total * cores * ticks_per_second / 100;  // ticks per percent
    std::sort(times.begin(), times.end());
    double median = times[times.size() / 2];
    std::cout << absl::StrFormat("%-64s %8.2f %6.2f-%-7.2f %8.1f %5.0f%% %6.0f%%\n", endpoints[e],
                                 median, times.front(), times.back(), bytes / 1e6 / median,
                                 during[e].busy / capacity, during[e].iowait / capacity);
  }
  return 0;
}
