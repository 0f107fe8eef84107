#include "ctl/build_commands.h"
#include "gtest/gtest.h"

namespace kapal::ctl {
namespace {

TEST(DockerignoreTest, LastMatchingPatternDecidesAndParentsCount) {
  std::vector<std::string> patterns = {"*.key", "logs", "!logs/keep.log", "/build/**/*.o",
                                       "./tmp/"};
  EXPECT_TRUE(Ignored(patterns, "secret.key"));
  EXPECT_FALSE(Ignored(patterns, "dir/secret.key"));  // * does not cross '/'
  EXPECT_TRUE(Ignored(patterns, "logs"));
  EXPECT_TRUE(Ignored(patterns, "logs/a.log"));
  EXPECT_FALSE(Ignored(patterns, "logs/keep.log"));
  EXPECT_TRUE(Ignored(patterns, "build/a/b/c.o"));
  EXPECT_TRUE(Ignored(patterns, "tmp/x"));
  EXPECT_FALSE(Ignored(patterns, "src/main.cc"));
  EXPECT_FALSE(Ignored({}, "anything"));
}

}  // namespace
}  // namespace kapal::ctl
