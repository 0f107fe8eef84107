#!/usr/bin/env bash
# Pull throughput of kapald and of containerd (Debian's package, CRI plugin) in one run: both on
# their own root, state and socket under a temporary directory, pulling the same image from a
# docker-registry on 127.0.0.1. Prints each one's median seconds and MB/s, and the ratio.
#
#   bench/pull-bench.sh [ROUNDS]        (as root, after deploy/kapal.sh build)
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build=${KAPAL_BUILD_DIR:-$repo/build}
rounds=${1:-3}

if ! command -v containerd >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends containerd </dev/null
fi

work=$(mktemp -d /tmp/kapal-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  done
  # containerd and kapald mount snapshots only for containers, but be sure.
  grep " $work" /proc/self/mountinfo | awk '{print $5}' | sort -r | xargs -r -n1 umount -l || true
  rm -rf "$work"
}
trap cleanup EXIT

wait_for() {  # wait_for DESCRIPTION COMMAND...
  local what=$1
  shift
  for _ in $(seq 1 200); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
  echo "pull-bench: $what did not start" >&2
  exit 1
}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$work/registry.yml" <<CONFIG
version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: 127.0.0.1:$port}
CONFIG
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
pids+=($!)
wait_for registry curl -sf "http://127.0.0.1:$port/v2/"

mkdir -p "$work/kapal"
cat >"$work/kapal/kapal.toml" <<CONFIG
root = "$work/kapal/root"
state = "$work/kapal/state"
log_level = "warn"
[grpc]
address = "$work/kapal/kapal.sock"
[metrics]
address = ""
CONFIG
"$build/cri/kapald" --config "$work/kapal/kapal.toml" >"$work/kapald.log" 2>&1 &
pids+=($!)
wait_for kapald test -S "$work/kapal/kapal.sock"

mkdir -p "$work/containerd"
cat >"$work/containerd/config.toml" <<CONFIG
version = 2
root = "$work/containerd/root"
state = "$work/containerd/state"
[grpc]
  address = "$work/containerd/containerd.sock"
[plugins."io.containerd.grpc.v1.cri".registry.mirrors."127.0.0.1:$port"]
  endpoint = ["http://127.0.0.1:$port"]
CONFIG
containerd --config "$work/containerd/config.toml" >"$work/containerd.log" 2>&1 &
pids+=($!)
wait_for containerd test -S "$work/containerd/containerd.sock"

echo "containerd $(containerd --version | awk '{print $3}'), kapald $("$build/cri/kapald" --version | awk '{print $2}'), $(nproc) cores"
"$build/bench/kapal-pull-bench" --registry-port "$port" --rounds "$rounds" \
  "unix://$work/kapal/kapal.sock" "unix://$work/containerd/containerd.sock" | tee "$work/result"
kapal=$(awk '/kapal.sock/ {print $3}' "$work/result")
containerd=$(awk '/containerd.sock/ {print $3}' "$work/result")
python3 -c "print(f'kapald / containerd throughput: {$kapal / $containerd:.2f}x')"
