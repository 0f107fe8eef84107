#pragma once

namespace kapal::shim {

// `kapal-shim --namespaces DIR UID_MAP GID_MAP [net] [ipc] [uts] [hostname=NAME]`: makes a user
// namespace with the given mappings ("CONTAINER_ID HOST_ID LENGTH" ranges joined by commas) and,
// created together with it so that it owns them, the named namespaces; pins each at DIR/user,
// DIR/net, DIR/ipc, DIR/uts with a bind mount and exits. The network namespace's loopback is
// brought up, the UTS namespace gets NAME. Reports one line on stdout: "ok" or "error TEXT"
// (then nothing is left pinned). kapald cannot do this itself: a multithreaded process can
// not enter a new user namespace.
int PinNamespaces(int argc, char** argv);

}  // namespace kapal::shim
