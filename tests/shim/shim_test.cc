#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "base/temp_dir.h"
#include "shim/cri_log.h"
#include "shim/exit_file.h"

namespace kapal::shim {
namespace {

std::vector<std::string> LogLines(const std::string& path) {
  std::ifstream in(path);
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

// The part after the timestamp: "stdout F text".
std::string WithoutTimestamp(const std::string& line) { return line.substr(line.find(' ') + 1); }

TEST(CriLogWriter, WritesWholeLinesWithStreamAndFullTag) {
  absl::StatusOr<base::TempDir> dir = base::TempDir::Create("cri-log");
  ASSERT_TRUE(dir.ok());
  CriLogWriter log(dir->Join("c.log"));
  ASSERT_EQ(log.Open(), 0);
  log.Write(Stream::kStdout, "hel", 3);
  log.Write(Stream::kStderr, "oops\n", 5);
  log.Write(Stream::kStdout, "lo\nsecond\n", 10);
  std::vector<std::string> lines = LogLines(dir->Join("c.log"));
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(WithoutTimestamp(lines[0]), "stderr F oops");
  EXPECT_EQ(WithoutTimestamp(lines[1]), "stdout F hello");
  EXPECT_EQ(WithoutTimestamp(lines[2]), "stdout F second");
  // RFC 3339 in UTC with nanoseconds.
  EXPECT_EQ(lines[0].find(' '), 30u) << lines[0];
  EXPECT_EQ(lines[0][29], 'Z');
}

TEST(CriLogWriter, SplitsLongLinesIntoPartialEntries) {
  absl::StatusOr<base::TempDir> dir = base::TempDir::Create("cri-log");
  ASSERT_TRUE(dir.ok());
  CriLogWriter log(dir->Join("c.log"), /*max_line=*/4);
  ASSERT_EQ(log.Open(), 0);
  std::string text = "abcdefghij\nwxyz\n";
  log.Write(Stream::kStdout, text.data(), text.size());
  std::vector<std::string> lines = LogLines(dir->Join("c.log"));
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(WithoutTimestamp(lines[0]), "stdout P abcd");
  EXPECT_EQ(WithoutTimestamp(lines[1]), "stdout P efgh");
  EXPECT_EQ(WithoutTimestamp(lines[2]), "stdout F ij");
  // A line exactly as long as the limit is one full entry.
  EXPECT_EQ(WithoutTimestamp(lines[3]), "stdout F wxyz");
}

TEST(CriLogWriter, FlushWritesAnUnfinishedLineAsPartial) {
  absl::StatusOr<base::TempDir> dir = base::TempDir::Create("cri-log");
  ASSERT_TRUE(dir.ok());
  CriLogWriter log(dir->Join("c.log"));
  ASSERT_EQ(log.Open(), 0);
  log.Write(Stream::kStdout, "no newline", 10);
  EXPECT_TRUE(LogLines(dir->Join("c.log")).empty());
  log.Flush();
  std::vector<std::string> lines = LogLines(dir->Join("c.log"));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(WithoutTimestamp(lines[0]), "stdout P no newline");
}

TEST(CriLogWriter, ReopenFollowsARotatedFile) {
  absl::StatusOr<base::TempDir> dir = base::TempDir::Create("cri-log");
  ASSERT_TRUE(dir.ok());
  CriLogWriter log(dir->Join("c.log"));
  ASSERT_EQ(log.Open(), 0);
  log.Write(Stream::kStdout, "one\n", 4);
  ASSERT_EQ(std::rename(dir->Join("c.log").c_str(), dir->Join("c.log.1").c_str()), 0);
  log.Write(Stream::kStdout, "two\n", 4);  // still into the rotated file
  ASSERT_EQ(log.Open(), 0);
  log.Write(Stream::kStdout, "three\n", 6);
  EXPECT_EQ(LogLines(dir->Join("c.log.1")).size(), 2u);
  std::vector<std::string> lines = LogLines(dir->Join("c.log"));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(WithoutTimestamp(lines[0]), "stdout F three");
}

TEST(CriLogWriter, TimestampFormat) {
  EXPECT_EQ(FormatLogTimestamp(1795609515048215380), "2026-11-25T12:25:15.048215380Z");
  EXPECT_EQ(FormatLogTimestamp(0), "1970-01-01T00:00:00.000000000Z");
}

TEST(ExitRecord, RoundTrips) {
  ExitRecord record{.exit_code = 137, .signal = 9, .finished_at_ns = 42, .oom_killed = true};
  std::optional<ExitRecord> parsed = ParseExitRecord(FormatExitRecord(record));
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(parsed->exit_code, 137);
  EXPECT_EQ(parsed->signal, 9);
  EXPECT_EQ(parsed->finished_at_ns, 42);
  EXPECT_TRUE(parsed->oom_killed);
}

TEST(ExitRecord, IncompleteTextIsNotARecord) {
  EXPECT_FALSE(ParseExitRecord("").has_value());
  EXPECT_FALSE(ParseExitRecord("exit_code=0\n").has_value());
  EXPECT_FALSE(
      ParseExitRecord("exit_code=0\nsignal=0\nfinished_at_ns=1\noom_killed=0").has_value());
  EXPECT_FALSE(
      ParseExitRecord("exit_code=x\nsignal=0\nfinished_at_ns=1\noom_killed=0\n").has_value());
}

}  // namespace
}  // namespace kapal::shim
