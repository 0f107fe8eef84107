#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "api/cri_messages.h"
#include "nlohmann/json.hpp"

namespace kapal::runtime {

// Capability names ("CAP_CHOWN", ...) in the kernel's numbering (index = number).
const std::vector<std::string>& KnownCapabilities();

// The capabilities in a /proc/PID/status capability mask ("CapEff:\t000001fffeffffff").
std::vector<std::string> CapabilitiesInMask(uint64_t mask);

// The capabilities this process holds: its effective set within its bounding set. A container
// can have no more (runc fails with "unable to apply caps" otherwise).
std::vector<std::string> HeldCapabilities();

// The capabilities a container gets by default (containerd's set).
const std::vector<std::string>& DefaultCapabilities();

// The capabilities of a container: the default set with the config's additions and drops
// ("ALL" in either), or for PRIVILEGED every one kapald holds. "ALL" means what kapald holds, as
// in containerd; naming one it does not hold is FAILED_PRECONDITION (the host cannot grant it),
// an unknown name INVALID_ARGUMENT.
absl::StatusOr<std::vector<std::string>> ContainerCapabilities(
    const runtime::v1::Capability& changes, bool privileged, const std::vector<std::string>& held);

// The seccomp section of the spec for the container's security context, null for unconfined.
// CRI's rules: unset means unconfined; RuntimeDefault (or the deprecated "runtime/default" and
// "docker/default") the default profile; Localhost (or "localhost/PATH") the profile at that
// absolute path, in Docker's format or the OCI one; a privileged container has none.
absl::StatusOr<nlohmann::json> SeccompFor(const runtime::v1::LinuxContainerSecurityContext& sc,
                                          const std::vector<std::string>& caps);

// RuntimeDefault: an allow-list like Docker's and containerd's default profiles. What is not
// listed (kernel modules, kexec, keyrings, new system calls) fails with EPERM; some calls are
// allowed only with the capability that makes them safe (mount with CAP_SYS_ADMIN, ...).
nlohmann::json DefaultSeccompProfile(const std::vector<std::string>& caps);

// A profile in Docker's format (archMap, includes/excludes, "name") as the OCI spec has it,
// for a container with CAPS on this machine's architecture. OCI profiles pass unchanged.
absl::StatusOr<nlohmann::json> ToOciSeccomp(const nlohmann::json& profile,
                                            const std::vector<std::string>& caps);

}  // namespace kapal::runtime
