#include "runtime/pod_cidr.h"

#include "gtest/gtest.h"

namespace kapal::runtime {
namespace {

TEST(PodCidrTest, AcceptsWhatKubeletSends) {
  EXPECT_TRUE(ValidatePodCidrs("").ok());
  EXPECT_TRUE(ValidatePodCidrs("10.88.0.0/16").ok());
  EXPECT_TRUE(ValidatePodCidrs("10.88.0.0/16,fd00:88::/64").ok());
}

TEST(PodCidrTest, RejectsMalformedRanges) {
  for (const char* bad : {"10.88.0.0", "10.88.0.0/33", "10.88.0/16", "fd00::/129", "x/8",
                          "10.88.0.0/16,10.89.0.0/16", "10.88.0.0/-1", "10.88.0.0/16,"}) {
    absl::Status status = ValidatePodCidrs(bad);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace kapal::runtime
