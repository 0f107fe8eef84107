#include "ctl/output.h"

#include <sstream>

#include "api/cri_services.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kapal::ctl {
namespace {

TEST(OutputTest, MessageToJsonUsesCamelCaseAndKeepsZeroValues) {
  runtime::v1::RuntimeCondition condition;
  condition.set_type("NetworkReady");
  nlohmann::json json = MessageToJson(condition);
  EXPECT_EQ(json["type"], "NetworkReady");
  EXPECT_EQ(json["status"], false);
  EXPECT_EQ(json["reason"], "");
  runtime::v1::VersionResponse version;
  version.set_runtime_api_version("v1");
  EXPECT_EQ(MessageToJson(version)["runtimeApiVersion"], "v1");
}

TEST(OutputTest, YamlQuotesStringsThatWouldChangeType) {
  nlohmann::json json = {{"version", "1.0"},   {"name", "kapal"}, {"empty", ""},
                         {"flag", "true"},     {"real", true},    {"count", 3},
                         {"list", {"a", "b"}}, {"none", nullptr}};
  std::string yaml = JsonToYaml(json);
  EXPECT_THAT(yaml, ::testing::HasSubstr("version: \"1.0\"\n"));
  EXPECT_THAT(yaml, ::testing::HasSubstr("name: kapal\n"));
  EXPECT_THAT(yaml, ::testing::HasSubstr("empty: \"\"\n"));
  EXPECT_THAT(yaml, ::testing::HasSubstr("flag: \"true\"\n"));
  EXPECT_THAT(yaml, ::testing::HasSubstr("real: true\n"));
  EXPECT_THAT(yaml, ::testing::HasSubstr("count: 3\n"));
  EXPECT_THAT(yaml, ::testing::HasSubstr("list:\n  - a\n  - b\n"));
}

TEST(OutputTest, TableAlignsColumnsAndTrimsLines) {
  Table table({"IMAGE", "TAG", "SIZE"});
  table.AddRow({"docker.io/library/busybox", "latest", "1.2MB"});
  table.AddRow({"a", "", ""});
  std::ostringstream out;
  table.Print(out);
  EXPECT_EQ(out.str(),
            "IMAGE                       TAG      SIZE\n"
            "docker.io/library/busybox   latest   1.2MB\n"
            "a\n");
}

TEST(OutputTest, FormatNames) {
  EXPECT_EQ(ParseOutputFormat("json").value(), OutputFormat::kJson);
  EXPECT_EQ(ParseOutputFormat("yaml").value(), OutputFormat::kYaml);
  EXPECT_EQ(ParseOutputFormat("table").value(), OutputFormat::kTable);
  EXPECT_FALSE(ParseOutputFormat("xml").ok());
}

}  // namespace
}  // namespace kapal::ctl
