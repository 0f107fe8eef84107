# Shared by the bench/*.sh scripts: a temporary work dir cleaned on exit, a docker-registry on
# 127.0.0.1, kapald and Debian's containerd (CRI plugin), each on its own root, state and socket
# under the work dir. Source it; it sets $work, $port, $kapald_pid, $containerd_pid.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${KAPAL_BUILD_DIR:-$repo/build}

# containerd to compare with; isal's igzip for the pull bench's floor.
if ! command -v containerd >/dev/null || ! command -v igzip >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends containerd isal </dev/null
fi

work=$(mktemp -d /tmp/kapal-bench.XXXXXX)
pids=()
# BENCH_FS=ext4: the work dir (every runtime's root, the registry's storage) is a fresh ext4
# with its journal, as a node's disk usually is, on a loop device (direct I/O, so the page cache
# holds one copy) over a file in /var/tmp. This machine's root filesystem has no journal, and
# without one ext4 skips inodes freed in the last minute when it allocates: a bench that removes
# an image and pulls it again then measures that scan as much as the pull.
fs_image=
loop_device=
if [ "${BENCH_FS:-}" = ext4 ]; then
  fs_image=$(mktemp /var/tmp/kapal-bench-fs.XXXXXX)
  fallocate -l 24G "$fs_image"
  mkfs.ext4 -q -F "$fs_image"
  loop_device=$(losetup --find --show --direct-io=on "$fs_image")
  mount "$loop_device" "$work"
fi
# containerd pins pod network namespaces in /run/netns; a run that failed half-way would leave
# its own there (kapald's are under its state dir).
netns_before=$(ip netns list 2>/dev/null | awk '{print $1}' | sort)
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  # Shims and containers outlive their daemons by design: end those of this run.
  for root in "$work"/kapal*/state/runtime/* "$work"/containerd/state/runc/*; do
    [ -d "$root" ] || continue
    for id in $(runc --root "$root" list -q 2>/dev/null); do
      runc --root "$root" delete --force "$id" >/dev/null 2>&1 || true
    done
  done
  # containerd's runc shim keeps its runc root in /run/containerd/runc whatever the state dir:
  # only the containers whose bundle is in this run's work dir are ours.
  for id in $(runc --root /run/containerd/runc/k8s.io list -q 2>/dev/null); do
    runc --root /run/containerd/runc/k8s.io state "$id" 2>/dev/null | grep -q "\"bundle\": \"$work" &&
      runc --root /run/containerd/runc/k8s.io delete --force "$id" >/dev/null 2>&1 || true
  done
  pkill -KILL -f "shim.*$work" 2>/dev/null || true
  grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l || true
  # Empty parent cgroups the runtimes made (rmdir leaves any that are still in use).
  for dir in /sys/fs/cgroup/*/kapal /sys/fs/cgroup/*/k8s.io /sys/fs/cgroup/*/kapal-bench; do
    [ -d "$dir" ] && find "$dir" -depth -type d -exec rmdir {} \; 2>/dev/null || true
  done
  for ns in $(comm -13 <(echo "$netns_before") <(ip netns list 2>/dev/null | awk '{print $1}' | sort)); do
    ip netns delete "$ns" 2>/dev/null || true
  done
  [ -n "${bench_bridge:-}" ] && ip link del "$bench_bridge" 2>/dev/null || true
  rm -rf "$work"
  [ -n "$loop_device" ] && losetup --detach "$loop_device" 2>/dev/null || true
  [ -n "$fs_image" ] && rm -f "$fs_image"
}
trap cleanup EXIT
# A stopped run cleans up too: bash runs the EXIT trap when `exit` ends it, not on a signal.
trap 'exit 130' INT
trap 'exit 143' TERM

cpu_seconds() {  # cpu_seconds PID: user + system CPU the process has used so far
  awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"
}

wait_for() {  # wait_for DESCRIPTION COMMAND...
  local what=$1
  shift
  for _ in $(seq 1 200); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "bench: $what did not start" >&2
  exit 1
}

start_registry() {
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  cat >"$work/registry.yml" <<CONFIG
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: 127.0.0.1:$port}
CONFIG
  docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
  registry_pid=$!
  pids+=($!)
  wait_for registry curl -sf "http://127.0.0.1:$port/v2/"
}

# kapald of the folder BINARIES on root, state and socket in $work/NAME; its log is
# $work/NAME.log with "kapal" read as "kapald". Sets $launched_pid.
launch_kapald() {  # launch_kapald NAME BINARIES CONFIG_SECTIONS [EXTRA_TOML]
  local name=$1 binaries=$2
  mkdir -p "$work/$name"
  cat >"$work/$name/kapal.toml" <<CONFIG
root = "$work/$name/root"
state = "$work/$name/state"
log_level = "${KAPALD_LOG_LEVEL:-warn}"
${4:-}
[grpc]
address = "$work/$name/kapal.sock"
$3
CONFIG
  "$binaries/kapald" --config "$work/$name/kapal.toml" >"$work/${name/kapal/kapald}.log" 2>&1 &
  launched_pid=$!
  pids+=($launched_pid)
  wait_for "$name" test -S "$work/$name/kapal.sock"
}

start_kapald() {  # start_kapald [EXTRA_TOML]; metrics served on $kapal_metrics_address if set
  launch_kapald kapal "$build/daemon" "$(printf '[metrics]\naddress = "%s"\n[docker]\naddress = "%s"' \
    "${kapal_metrics_address:-}" "$work/kapal/docker.sock")" "${1:-}"
  kapald_pid=$launched_pid
}

# An older kapald for before/after figures in one run: kapald and kapal-shim of an earlier
# commit's build, in the folder BEFORE_DIR, on their own root and socket in $work/kapal-before.
# Only keys that every kapald knows go into its config (no [docker]).
start_kapald_before() {  # start_kapald_before BEFORE_DIR [EXTRA_TOML]
  launch_kapald kapal-before "$1" "$(printf '[metrics]\naddress = ""')" "${2:-}"
  kapald_before_pid=$launched_pid
}

# containerd of Debian's newer suite (sid), for comparing with the current release: its .deb is
# fetched with `apt-get download` through a sources list of our own under /var/tmp (the system's
# apt configuration is not touched) and unpacked with dpkg-deb -x, never installed. Prints the
# folder of its binaries. It runs on bookworm's glibc (Go, static apart from libc).
sid_containerd() {
  local dir=/var/tmp/kapal-bench-sid
  if [ ! -x "$dir/root/usr/bin/containerd" ]; then
    mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/etc"
    echo "deb http://deb.debian.org/debian sid main" >"$dir/etc/sources.list"
    local apt_options=(-o "Dir::Etc::SourceList=$dir/etc/sources.list" -o Dir::Etc::SourceParts=/dev/null
      -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache" -o APT::Sandbox::User=root)
    apt-get "${apt_options[@]}" -qq update >&2
    (cd "$dir" && rm -f containerd_*.deb && apt-get "${apt_options[@]}" -qq download containerd >&2)
    rm -rf "$dir/root"
    dpkg-deb -x "$dir"/containerd_*.deb "$dir/root"
  fi
  echo "$dir/root/usr/bin"
}

# containerd from the folder BINARIES (default: Debian's installed one) on root, state and socket
# in $work/NAME, the run's registry reached over plain HTTP through a hosts.toml (what both 1.6
# and 2.x read). Sets $containerd_pid.
start_containerd_named() {  # start_containerd_named NAME BINARIES [EXTRA_CRI_TOML]
  local name=$1 binaries=$2
  mkdir -p "$work/$name/certs.d/127.0.0.1:$port"
  cat >"$work/$name/certs.d/127.0.0.1:$port/hosts.toml" <<CONFIG
server = "http://127.0.0.1:$port"
[host."http://127.0.0.1:$port"]
  capabilities = ["pull", "resolve", "push"]
CONFIG
  cat >"$work/$name/config.toml" <<CONFIG
version = 2
root = "$work/$name/root"
state = "$work/$name/state"
[grpc]
  address = "$work/$name/containerd.sock"
[plugins."io.containerd.grpc.v1.cri".registry]
  config_path = "$work/$name/certs.d"
${3:-}
CONFIG
  PATH="$binaries:$PATH" "$binaries/containerd" --config "$work/$name/config.toml" \
    >"$work/$name.log" 2>&1 &
  containerd_pid=$!
  pids+=($containerd_pid)
  wait_for "$name" test -S "$work/$name/containerd.sock"
}

start_containerd() {  # start_containerd [EXTRA_CRI_TOML]
  start_containerd_named containerd "$(dirname "$(command -v containerd)")" "${1:-}"
}

# An image of /bin/busybox with APPLETS (space-separated) linked in /bin and the umoci config
# arguments given, pushed to the run's registry as REF.
push_busybox_image() {  # push_busybox_image REF "APPLETS" UMOCI_CONFIG_ARGS...
  local ref=$1 applets=$2
  shift 2
  (
    cd "$work"
    rm -rf bundle oci
    umoci init --layout oci >/dev/null
    umoci new --image oci:img >/dev/null
    umoci unpack --image oci:img bundle >/dev/null
    mkdir -p bundle/rootfs/bin
    cp /bin/busybox bundle/rootfs/bin/busybox
    for applet in $applets; do ln -sf busybox "bundle/rootfs/bin/$applet"; done
    umoci repack --image oci:img bundle >/dev/null
    umoci config --image oci:img "$@" >/dev/null
    skopeo copy -q --dest-tls-verify=false oci:oci:img "docker://$ref" >&2
    rm -rf bundle oci
  )
}

# The pause image containerd runs per pod: busybox sleeping. Pushed to the run's registry; its
# reference is printed.
build_pause_image() {
  local ref="127.0.0.1:$port/bench/pause:1"
  push_busybox_image "$ref" "sleep" --config.entrypoint /bin/sleep --config.cmd 2147483647
  echo "$ref"
}

# Both runtimes ready to run pods on one CNI network of this run's own: a bridge BRIDGE on
# SUBNET (no masquerade), the registry, containerd's pause image, kapald and containerd. Prints
# the versions. KAPAL_EXTRA and CONTAINERD_EXTRA name functions that print more of each one's
# config, called once the registry's $port is known. With KAPALD_BEFORE (the folder of an
# earlier commit's kapald and kapal-shim) a second, older kapald runs too ($work/kapal-before).
start_pod_runtimes() {  # start_pod_runtimes BRIDGE SUBNET [KAPAL_EXTRA CONTAINERD_EXTRA]
  bench_bridge=$1
  mkdir -p "$work/net.d"
  cat >"$work/net.d/10-bench.conflist" <<CONFIG
{"cniVersion": "1.0.0", "name": "kapal-bench", "plugins": [
  {"type": "bridge", "bridge": "$bench_bridge", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "dataDir": "$work/ipam",
            "ranges": [[{"subnet": "$2"}]]}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "loopback"}]}
CONFIG
  start_registry
  local pause_ref
  pause_ref=$(build_pause_image)
  local kapal_extra="" containerd_extra=""
  [ -n "${3:-}" ] && kapal_extra=$("$3")
  [ -n "${4:-}" ] && containerd_extra=$("$4")
  start_kapald "$(printf '%s\n[cni]\nconf_dir = "%s"\n' "$kapal_extra" "$work/net.d")"
  if [ -n "${KAPALD_BEFORE:-}" ]; then
    start_kapald_before "$KAPALD_BEFORE" "$(printf '%s\n[cni]\nconf_dir = "%s"\n' "$kapal_extra" "$work/net.d")"
  fi
  start_containerd "$(cat <<CONFIG
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_ref"
  restrict_oom_score_adj = true
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "$work/net.d"
$containerd_extra
CONFIG
)"
  echo "containerd $(containerd --version | awk '{print $3}'), kapald $("$build/daemon/kapald" --version | awk '{print $2}'), runc $(runc --version | awk 'NR==1 {print $3}'), $(nproc) cores"
}

median_ms() {  # median_ms COMMAND...: runs it $rounds times, prints the median wall time in ms
  local times=()
  for _ in $(seq 1 "$rounds"); do
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null || { echo "bench: $* failed" >&2; exit 1; }
    end=$(date +%s%N)
    times+=($(((end - start) / 1000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}'
}

# The Docker-door benchmarks: their own CNI network (bridge BRIDGE on SUBNET, no masquerade),
# a registry with a busybox image of APPLETS ($image), kapald with its Docker socket, the docker
# CLI ($docker_cli, DOCKER_HOST set) and kapalctl ($kapalctl) pointed at it, the image pulled.
start_docker_door() {  # start_docker_door BRIDGE SUBNET "APPLETS"
  docker_cli=${KAPAL_DOCKER_CLI:-/usr/local/libexec/kapal/docker}
  [ -x "$docker_cli" ] || { echo "bench: $docker_cli missing (deploy/kapal.sh test installs it)" >&2; exit 1; }
  bench_bridge=$1
  mkdir -p "$work/net.d"
  cat >"$work/net.d/10-bench.conflist" <<CONFIG
{"cniVersion": "1.0.0", "name": "kapal-bench", "plugins": [
  {"type": "bridge", "bridge": "$bench_bridge", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "dataDir": "$work/ipam", "ranges": [[{"subnet": "$2"}]]}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "loopback"}]}
CONFIG
  start_registry
  image="127.0.0.1:$port/bench/busybox:1"
  push_busybox_image "$image" "$3" --config.cmd /bin/sh
  start_kapald "$(printf '[cni]\nconf_dir = "%s"\n' "$work/net.d")"
  export DOCKER_HOST="unix://$work/kapal/docker.sock" DOCKER_CONFIG="$work/docker-config"
  kapalctl=("$build/ctl/kapalctl" --config /dev/null -r "unix://$work/kapal/kapal.sock")
  "$docker_cli" pull -q "$image" >/dev/null
}
