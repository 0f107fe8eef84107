#include "runtime/security.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "base/files.h"
#include "base/temp_dir.h"
#include "runtime/users.h"

namespace kapal::runtime {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::Not;

std::vector<std::string> AllowedNames(const nlohmann::json& profile) {
  std::vector<std::string> names;
  for (const nlohmann::json& rule : profile["syscalls"]) {
    if (rule["action"] == "SCMP_ACT_ALLOW" && !rule.contains("args")) {
      for (const nlohmann::json& name : rule["names"]) names.push_back(name.get<std::string>());
    }
  }
  return names;
}

TEST(CapabilitiesTest, MaskNamesTheKernelsBits) {
  EXPECT_THAT(CapabilitiesInMask(0x1), ElementsAre("CAP_CHOWN"));
  EXPECT_THAT(CapabilitiesInMask(uint64_t{1} << 21), ElementsAre("CAP_SYS_ADMIN"));
  // This development machine's bounding set: everything but CAP_SYS_RESOURCE (24).
  std::vector<std::string> held = CapabilitiesInMask(0x000001fffeffffff);
  EXPECT_EQ(held.size(), KnownCapabilities().size() - 1);
  EXPECT_THAT(held, Not(Contains("CAP_SYS_RESOURCE")));
}

TEST(CapabilitiesTest, AllAndPrivilegedMeanWhatKapaldHolds) {
  std::vector<std::string> held = CapabilitiesInMask(0x000001fffeffffff);
  runtime::v1::Capability all;
  all.add_add_capabilities("ALL");
  EXPECT_EQ(*ContainerCapabilities(all, false, held), held);
  EXPECT_EQ(*ContainerCapabilities({}, true, held), held);
  runtime::v1::Capability not_held;
  not_held.add_add_capabilities("SYS_RESOURCE");
  EXPECT_EQ(ContainerCapabilities(not_held, false, held).status().code(),
            absl::StatusCode::kFailedPrecondition);
  runtime::v1::Capability unknown;
  unknown.add_add_capabilities("CAP_FLY");
  EXPECT_EQ(ContainerCapabilities(unknown, false, held).status().code(),
            absl::StatusCode::kInvalidArgument);
  runtime::v1::Capability drop_all;
  drop_all.add_drop_capabilities("ALL");
  drop_all.add_add_capabilities("NET_ADMIN");
  EXPECT_TRUE(ContainerCapabilities(drop_all, false, held)->empty());
}

TEST(SeccompTest, RuntimeDefaultIsAnAllowList) {
  nlohmann::json profile = DefaultSeccompProfile(DefaultCapabilities());
  EXPECT_EQ(profile["defaultAction"], "SCMP_ACT_ERRNO");
  std::vector<std::string> allowed = AllowedNames(profile);
  EXPECT_THAT(allowed, Contains("read"));
  EXPECT_THAT(allowed, Contains("execve"));
  EXPECT_THAT(allowed, Contains("chroot"));  // CAP_SYS_CHROOT is a default capability
  for (const char* denied : {"init_module", "kexec_load", "mount", "unshare", "sethostname",
                             "keyctl", "add_key", "reboot", "clone"}) {
    EXPECT_THAT(allowed, Not(Contains(denied))) << denied;
  }
  std::vector<std::string> admin_caps = DefaultCapabilities();
  admin_caps.push_back("CAP_SYS_ADMIN");
  std::vector<std::string> with_admin = AllowedNames(DefaultSeccompProfile(admin_caps));
  EXPECT_THAT(with_admin, Contains("mount"));
  EXPECT_THAT(with_admin, Contains("sethostname"));
  EXPECT_THAT(with_admin, Contains("clone"));
}

TEST(SeccompTest, FollowsCriRulesForEachField) {
  runtime::v1::LinuxContainerSecurityContext sc;
  EXPECT_TRUE(SeccompFor(sc, DefaultCapabilities())->is_null());  // unset: unconfined
  for (const char* name : {"runtime/default", "docker/default"}) {
    sc.set_seccomp_profile_path(name);
    EXPECT_EQ((*SeccompFor(sc, DefaultCapabilities()))["defaultAction"], "SCMP_ACT_ERRNO");
  }
  sc.set_seccomp_profile_path("unconfined");
  EXPECT_TRUE(SeccompFor(sc, DefaultCapabilities())->is_null());
  sc.set_seccomp_profile_path("/etc/profile.json");  // no localhost/ prefix
  EXPECT_EQ(SeccompFor(sc, DefaultCapabilities()).status().code(),
            absl::StatusCode::kInvalidArgument);
  sc.clear_seccomp_profile_path();
  sc.mutable_seccomp()->set_profile_type(runtime::v1::SecurityProfile::RuntimeDefault);
  EXPECT_EQ((*SeccompFor(sc, DefaultCapabilities()))["defaultAction"], "SCMP_ACT_ERRNO");
  sc.set_privileged(true);
  EXPECT_TRUE(SeccompFor(sc, DefaultCapabilities())->is_null());
}

TEST(SeccompTest, LocalhostProfileInDockersFormat) {
  absl::StatusOr<base::TempDir> dir = base::TempDir::Create("seccomp");
  ASSERT_TRUE(dir.ok());
  std::string path = dir->Join("profile.json");
  ASSERT_TRUE(base::WriteFileAtomically(path, R"({
    "defaultAction": "SCMP_ACT_ALLOW",
    "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]}],
    "syscalls": [
      {"name": "chmod", "action": "SCMP_ACT_ERRNO"},
      {"names": ["sethostname"], "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_ADMIN"]}},
      {"names": ["uname"], "action": "SCMP_ACT_ERRNO", "excludes": {"caps": ["CAP_CHOWN"]}}
    ]})")
                  .ok());
  runtime::v1::LinuxContainerSecurityContext sc;
  sc.set_seccomp_profile_path("localhost/" + path);
  absl::StatusOr<nlohmann::json> profile = SeccompFor(sc, DefaultCapabilities());
  ASSERT_TRUE(profile.ok()) << profile.status();
  ASSERT_EQ((*profile)["syscalls"].size(), 1u);  // no CAP_SYS_ADMIN; CAP_CHOWN held
  EXPECT_EQ((*profile)["syscalls"][0]["names"], nlohmann::json::array({"chmod"}));
  EXPECT_FALSE((*profile)["syscalls"][0].contains("name"));
  EXPECT_FALSE(profile->contains("archMap"));
#if defined(__x86_64__)
  EXPECT_EQ((*profile)["architectures"],
            nlohmann::json::array({"SCMP_ARCH_X86_64", "SCMP_ARCH_X86"}));
#endif

  runtime::v1::LinuxContainerSecurityContext typed;
  typed.mutable_seccomp()->set_profile_type(runtime::v1::SecurityProfile::Localhost);
  typed.mutable_seccomp()->set_localhost_ref(dir->Join("missing.json"));
  EXPECT_EQ(SeccompFor(typed, DefaultCapabilities()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(UsersTest, RunAsGroupNeedsAUser) {
  runtime::v1::ContainerConfig config;
  config.mutable_linux()->mutable_security_context()->mutable_run_as_group()->set_value(1000);
  EXPECT_EQ(ResolveUser("/nonexistent", config, "").status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kapal::runtime
