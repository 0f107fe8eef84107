// Pull benchmark against any CRI endpoint.
//
//   kapal-pull-bench --registry-port PORT ENDPOINT...
//
// Pushes an image of three 50 MB layers of incompressible data (gzip) to the registry on
// 127.0.0.1:PORT, then for each CRI endpoint pulls it ROUNDS times (removing it before each
// pull) and prints the median time and throughput. Throughput counts the compressed bytes
// fetched from the registry.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <iostream>
#include <random>

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

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kapal pull benchmark"};
  int registry_port = 0;
  int rounds = 3;
  int layer_mb = 50;
  std::vector<std::string> endpoints;
  app.add_option("--registry-port", registry_port, "Registry on 127.0.0.1")->required();
  app.add_option("--rounds", rounds, "Pulls per endpoint (the median is reported)");
  app.add_option("--layer-mb", layer_mb, "Size of each of the three layers");
  app.add_option("endpoints", endpoints, "CRI endpoints (unix:///path)")->required();
  CLI11_PARSE(app, argc, argv);

  auto registry = kapal::testing::RegistryFixture::External(registry_port);
  if (!registry.ok()) {
    std::cerr << registry.status() << "\n";
    return 1;
  }
  TestImage image;
  auto rootfs = kapal::testing::BusyboxRootfs();
  if (!rootfs.ok()) return 1;
  int64_t bytes = 0;
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
  std::string reference = (*registry)->Host() + "/bench/pull:3x50mb";
  std::cout << absl::StrFormat("image %s: 3 gzip layers, %.1f MB compressed, median of %d pulls\n",
                               reference, bytes / 1e6, rounds);
  std::cout << absl::StrFormat("%-40s %10s %10s\n", "endpoint", "seconds", "MB/s");
  for (const std::string& endpoint : endpoints) {
    auto channel = grpc::CreateChannel(endpoint, grpc::InsecureChannelCredentials());
    auto images = runtime::v1::ImageService::NewStub(channel);
    std::vector<double> seconds;
    for (int round = 0; round < rounds; ++round) {
      runtime::v1::RemoveImageRequest remove;
      remove.mutable_image()->set_image(reference);
      runtime::v1::RemoveImageResponse removed;
      grpc::Status status =
          images->RemoveImage(Deadline(std::chrono::seconds(60)).get(), remove, &removed);
      if (!status.ok()) {
        std::cerr << endpoint << ": RemoveImage: " << status.error_message() << "\n";
        return 1;
      }
      runtime::v1::PullImageRequest pull;
      pull.mutable_image()->set_image(reference);
      runtime::v1::PullImageResponse pulled;
      auto start = std::chrono::steady_clock::now();
      status = images->PullImage(Deadline(std::chrono::seconds(600)).get(), pull, &pulled);
      double elapsed =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (!status.ok()) {
        std::cerr << endpoint << ": PullImage: " << status.error_message() << "\n";
        return 1;
      }
      seconds.push_back(elapsed);
    }
    std::sort(seconds.begin(), seconds.end());
    double median = seconds[seconds.size() / 2];
    std::cout << absl::StrFormat("%-40s %10.2f %10.1f\n", endpoint, median, bytes / 1e6 / median);
  }
  return 0;
}
