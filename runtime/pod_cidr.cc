#include "runtime/pod_cidr.h"

#include <arpa/inet.h>

#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace kapal::runtime {

absl::Status ValidatePodCidrs(absl::string_view cidrs) {
  if (cidrs.empty()) return absl::OkStatus();
  bool seen_v4 = false, seen_v6 = false;
  for (absl::string_view cidr : absl::StrSplit(cidrs, ',')) {
    size_t slash = cidr.find('/');
    int bits = -1;
    if (slash == absl::string_view::npos || !absl::SimpleAtoi(cidr.substr(slash + 1), &bits)) {
      return absl::InvalidArgumentError(
          absl::StrCat("pod CIDR \"", cidr, "\" is not ADDRESS/BITS (example: 10.88.0.0/16)"));
    }
    std::string address(cidr.substr(0, slash));
    unsigned char buffer[sizeof(in6_addr)];
    if (inet_pton(AF_INET, address.c_str(), buffer) == 1) {
      if (bits < 0 || bits > 32 || seen_v4) {
        return absl::InvalidArgumentError(absl::StrCat(
            "pod CIDR \"", cidr, "\": ", seen_v4 ? "a second IPv4 range" : "bits must be 0 to 32"));
      }
      seen_v4 = true;
    } else if (inet_pton(AF_INET6, address.c_str(), buffer) == 1) {
      if (bits < 0 || bits > 128 || seen_v6) {
        return absl::InvalidArgumentError(
            absl::StrCat("pod CIDR \"", cidr,
                         "\": ", seen_v6 ? "a second IPv6 range" : "bits must be 0 to 128"));
      }
      seen_v6 = true;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("pod CIDR \"", cidr, "\": \"", address, "\" is not an IP address"));
    }
  }
  return absl::OkStatus();
}

}  // namespace kapal::runtime
