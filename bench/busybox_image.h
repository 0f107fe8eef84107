#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "tests/fixtures/registry_fixture.h"
#include "tests/fixtures/test_image.h"

namespace kapal::bench {

// Pushes the busybox image the benchmarks run (the host's /bin/busybox and a few applet links)
// to the registry on 127.0.0.1:REGISTRY_PORT; its reference.
inline absl::StatusOr<std::string> PushBusyboxImage(int registry_port) {
  auto registry = testing::RegistryFixture::External(registry_port);
  if (!registry.ok()) return registry.status();
  auto rootfs = testing::BusyboxRootfs();
  if (!rootfs.ok()) return rootfs.status();
  auto layer = testing::BuildLayer(*rootfs, testing::Compression::kGzip);
  if (!layer.ok()) return layer.status();
  testing::TestImage image;
  image.layers.push_back(*layer);
  if (absl::StatusOr<std::string> pushed = (*registry)->Push("bench/busybox", "1", image);
      !pushed.ok()) {
    return pushed.status();
  }
  return absl::StrCat("127.0.0.1:", registry_port, "/bench/busybox:1");
}

}  // namespace kapal::bench
