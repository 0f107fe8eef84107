// The Dockerfile's syntax and Docker's word expansion, and what a build step's layer holds.
#include "builder/dockerfile.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>

#include <fstream>
#include <map>

#include "base/files.h"
#include "base/temp_dir.h"
#include "builder/copy.h"
#include "builder/layer_diff.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "images/content_store.h"
#include "store/store.h"

namespace kapal::builder {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

Lookup Vars(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto found = vars.find(name);
    if (found == vars.end()) return std::nullopt;
    return found->second;
  };
}

TEST(DockerfileTest, ParsesStagesContinuationsCommentsAndForms) {
  absl::StatusOr<Dockerfile> parsed = ParseDockerfile(
      "# syntax=docker/dockerfile:1\n"
      "ARG VERSION=1\n"
      "FROM busybox:${VERSION} AS Build\n"
      "# a comment\n"
      "RUN echo one \\\n"
      "  # a comment inside\n"
      "    two\n"
      "\n"
      "copy --chown=1:2 --from=x a b /dest/\n"
      "CMD [\"sh\", \"-c\", \"echo hi\"]\n"
      "FROM scratch\n"
      "ENTRYPOINT not json [\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  ASSERT_EQ(parsed->global_args.size(), 1u);
  ASSERT_EQ(parsed->stages.size(), 2u);
  const Stage& build = parsed->stages[0];
  EXPECT_EQ(build.name, "build");
  EXPECT_EQ(build.base, "busybox:${VERSION}");
  ASSERT_EQ(build.instructions.size(), 3u);
  EXPECT_EQ(build.instructions[0].keyword, "RUN");
  EXPECT_EQ(build.instructions[0].rest, "echo one two");
  EXPECT_EQ(build.instructions[0].line, 5);
  EXPECT_FALSE(build.instructions[0].json.has_value());
  EXPECT_EQ(build.instructions[1].keyword, "COPY");
  EXPECT_EQ(build.instructions[1].Flag("chown"), "1:2");
  EXPECT_EQ(build.instructions[1].Flag("from"), "x");
  EXPECT_EQ(build.instructions[1].rest, "a b /dest/");
  ASSERT_TRUE(build.instructions[2].json.has_value());
  EXPECT_THAT(*build.instructions[2].json, ElementsAre("sh", "-c", "echo hi"));
  EXPECT_FALSE(parsed->stages[1].instructions[0].json.has_value());
  EXPECT_EQ(parsed->Steps(), 1 + 1 + 3 + 1 + 1);
}

TEST(DockerfileTest, EscapeDirectiveChangesTheContinuationCharacter) {
  absl::StatusOr<Dockerfile> parsed =
      ParseDockerfile("# escape=`\nFROM busybox\nRUN echo a `\n  b\nRUN echo c\\d\n");
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->escape, '`');
  EXPECT_EQ(parsed->stages[0].instructions[0].rest, "echo a b");
  EXPECT_EQ(parsed->stages[0].instructions[1].rest, "echo c\\d");
}

TEST(DockerfileTest, ErrorsNameTheLine) {
  absl::StatusOr<Dockerfile> unknown = ParseDockerfile("FROM busybox\n\nRUNN x\n");
  ASSERT_FALSE(unknown.ok());
  EXPECT_EQ(unknown.status().message(), "Dockerfile line 3: unknown instruction: RUNN");
  absl::StatusOr<Dockerfile> early = ParseDockerfile("RUN x\nFROM busybox\n");
  ASSERT_FALSE(early.ok());
  EXPECT_THAT(early.status().message(), HasSubstr("line 1: RUN before the first FROM"));
  EXPECT_FALSE(ParseDockerfile("# only a comment\n").ok());
  EXPECT_FALSE(ParseDockerfile("FROM a b c d\n").ok());
  EXPECT_FALSE(ParseDockerfile("# escape=x\nFROM a\n").ok());
}

TEST(DockerfileTest, ExpandsVariablesAsDockerDoes) {
  Lookup vars = Vars({{"A", "alpha"}, {"EMPTY", ""}, {"SP", "x y"}});
  auto expand = [&](const std::string& word) { return *ExpandWord(word, vars); };
  EXPECT_EQ(expand("$A/${A}_$A"), "alpha/alpha_alpha");
  EXPECT_EQ(expand("${MISSING:-fallback} ${EMPTY:-used} ${EMPTY-kept}"), "fallback used ");
  EXPECT_EQ(expand("${A:+set} ${MISSING:+never}"), "set ");
  EXPECT_EQ(expand("${MISSING:-${A}}"), "alpha");
  EXPECT_EQ(expand("'$A' \"$A\" \\$A"), "$A alpha $A");
  EXPECT_EQ(expand("price: $5 and $"), "price: $5 and $");
  EXPECT_FALSE(ExpandWord("${A", vars).ok());
  EXPECT_FALSE(ExpandWord("\"unterminated", vars).ok());
  EXPECT_FALSE(ExpandWord("${A?err}", vars).ok());

  absl::StatusOr<std::vector<std::string>> words = ExpandWords("80 $SP \"$SP\" ''", vars);
  ASSERT_TRUE(words.ok());
  EXPECT_THAT(*words, ElementsAre("80", "x", "y", "x y", ""));
}

TEST(DockerfileTest, AssignmentsInBothForms) {
  Instruction env;
  env.keyword = "ENV";
  env.rest = "A=1 B=\"two words\" C=${A}x";
  absl::StatusOr<std::vector<Assignment>> pairs = ParseAssignments(env, Vars({{"A", "z"}}));
  ASSERT_TRUE(pairs.ok()) << pairs.status();
  ASSERT_EQ(pairs->size(), 3u);
  EXPECT_EQ((*pairs)[1].value, "two words");
  EXPECT_EQ((*pairs)[2].value, "zx");
  env.rest = "NAME the rest of the line";
  pairs = ParseAssignments(env, Vars({}));
  ASSERT_TRUE(pairs.ok());
  EXPECT_EQ((*pairs)[0].name, "NAME");
  EXPECT_EQ((*pairs)[0].value, "the rest of the line");
  env.rest = "A=1 B";
  EXPECT_FALSE(ParseAssignments(env, Vars({})).ok());
  Instruction arg;
  arg.keyword = "ARG";
  arg.rest = "ONLY_NAME";
  pairs = ParseAssignments(arg, Vars({}));
  ASSERT_TRUE(pairs.ok());
  EXPECT_FALSE((*pairs)[0].has_value);
}

TEST(CopyTest, PathsNeverLeaveTheRoot) {
  absl::StatusOr<base::TempDir> root = base::TempDir::Create("copy-root");
  ASSERT_TRUE(root.ok());
  ASSERT_EQ(::mkdir(root->Join("real").c_str(), 0755), 0);
  ASSERT_EQ(::symlink("/etc", root->Join("escape").c_str()), 0);
  ASSERT_EQ(::symlink("../../../../real", root->Join("up").c_str()), 0);
  EXPECT_EQ(*base::ResolveInRoot(root->Path(), "/escape/passwd"), root->Join("etc/passwd"));
  EXPECT_EQ(*base::ResolveInRoot(root->Path(), "/up/file"), root->Join("real/file"));
  EXPECT_EQ(*base::ResolveInRoot(root->Path(), "/../../x"), root->Join("x"));
  EXPECT_FALSE(MatchSources(root->Path(), {"../outside"}).ok());
  EXPECT_TRUE(absl::IsNotFound(MatchSources(root->Path(), {"nothing*"}).status()));
}

TEST(CopyTest, ChownNamesAreTheImagesAndAGroupDefaultsToTheUserId) {
  absl::StatusOr<base::TempDir> root = base::TempDir::Create("chown-root");
  ASSERT_TRUE(root.ok());
  ASSERT_EQ(::mkdir(root->Join("etc").c_str(), 0755), 0);
  std::ofstream(root->Join("etc/passwd"))
      << "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/:/bin/sh\n";
  std::ofstream(root->Join("etc/group")) << "root:x:0:\nstaff:x:50:\n";
  absl::StatusOr<Owner> named = ResolveOwner(root->Path(), "app:staff");
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ(named->uid, 1000u);
  EXPECT_EQ(named->gid, 50u);
  absl::StatusOr<Owner> alone = ResolveOwner(root->Path(), "app");  // Docker: gid = uid
  ASSERT_TRUE(alone.ok());
  EXPECT_EQ(alone->gid, 1000u);
  absl::StatusOr<Owner> numbers = ResolveOwner(root->Path(), "7:8");
  ASSERT_TRUE(numbers.ok());
  EXPECT_EQ(numbers->uid, 7u);
  EXPECT_EQ(numbers->gid, 8u);
  absl::StatusOr<Owner> unknown = ResolveOwner(root->Path(), "nobody-here");
  ASSERT_FALSE(unknown.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(unknown.status()));
  EXPECT_THAT(unknown.status().message(), HasSubstr("nobody-here"));
}

// A tar's entries (name → type letter and link target / size) for the layer tests.
std::map<std::string, std::string> TarEntries(const std::string& path) {
  std::map<std::string, std::string> entries;
  archive* in = archive_read_new();
  archive_read_support_filter_all(in);
  archive_read_support_format_tar(in);
  if (archive_read_open_filename(in, path.c_str(), 1 << 16) != ARCHIVE_OK) return entries;
  archive_entry* entry;
  while (archive_read_next_header(in, &entry) == ARCHIVE_OK) {
    std::string kind = archive_entry_filetype(entry) == AE_IFDIR ? "dir" : "file";
    if (archive_entry_hardlink(entry) != nullptr) kind = "hardlink";
    entries[archive_entry_pathname(entry)] = kind;
  }
  archive_read_free(in);
  return entries;
}

TEST(LayerDiffTest, OverlayDeletionsAndOpaqueDirectoriesBecomeOciWhiteouts) {
  absl::StatusOr<base::TempDir> dir = base::TempDir::Create("layer-diff");
  ASSERT_TRUE(dir.ok());
  absl::StatusOr<std::unique_ptr<store::Store>> store = store::Store::Open(dir->Join("db"));
  ASSERT_TRUE(store.ok());
  absl::StatusOr<std::unique_ptr<images::ContentStore>> content =
      images::ContentStore::Open(dir->Join("content"), **store);
  ASSERT_TRUE(content.ok());
  std::string upper = dir->Join("upper");
  ASSERT_EQ(::mkdir(upper.c_str(), 0755), 0);
  ASSERT_EQ(::mkdir((upper + "/etc").c_str(), 0755), 0);
  { std::ofstream(upper + "/etc/config") << "x"; }
  ASSERT_EQ(::link((upper + "/etc/config").c_str(), (upper + "/etc/same").c_str()), 0);
  ASSERT_EQ(::mknod((upper + "/etc/deleted").c_str(), S_IFCHR | 0, makedev(0, 0)), 0);
  ASSERT_EQ(::mkdir((upper + "/opaque").c_str(), 0755), 0);
  ASSERT_EQ(::setxattr((upper + "/opaque").c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
  { std::ofstream(upper + "/etc/hosts"); }  // an empty mount point runc made
  ASSERT_EQ(::mkdir((upper + "/proc").c_str(), 0755), 0);

  absl::StatusOr<LayerBlob> layer = WriteLayerFromUpperDir(upper, **content, RuntimeMountPoints());
  ASSERT_TRUE(layer.ok()) << layer.status();
  EXPECT_EQ(layer->descriptor.media_type, "application/vnd.oci.image.layer.v1.tar+gzip");
  EXPECT_TRUE((*content)->Has(layer->descriptor.digest));
  std::map<std::string, std::string> entries =
      TarEntries((*content)->PathOf(layer->descriptor.digest));
  EXPECT_EQ(entries, (std::map<std::string, std::string>{{"etc/", "dir"},
                                                         {"etc/config", "file"},
                                                         {"etc/.wh.deleted", "file"},
                                                         {"etc/same", "hardlink"},
                                                         {"opaque/", "dir"},
                                                         {"opaque/.wh..wh..opq", "file"}}));
  // The diff id is the uncompressed tar's digest: the same tree gives the same layer.
  absl::StatusOr<LayerBlob> again = WriteLayerFromUpperDir(upper, **content, RuntimeMountPoints());
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->diff_id, layer->diff_id);
}

}  // namespace
}  // namespace kapal::builder
