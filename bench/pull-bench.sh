#!/usr/bin/env bash
# Pull throughput of kapald and of containerd (Debian's package, CRI plugin) in one run: both on
# their own root, state and socket under a temporary directory, pulling the same image from a
# docker-registry on 127.0.0.1. Prints each one's median seconds and MB/s, and the ratio.
#
#   bench/pull-bench.sh [ROUNDS]        (as root, after deploy/kapal.sh build)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
rounds=${1:-3}

start_registry
start_kapald
start_containerd

echo "containerd $(containerd --version | awk '{print $3}'), kapald $("$build/daemon/kapald" --version | awk '{print $2}'), $(nproc) cores"
"$build/bench/kapal-pull-bench" --registry-port "$port" --rounds "$rounds" \
  "unix://$work/kapal/kapal.sock" "unix://$work/containerd/containerd.sock" | tee "$work/result"
kapal=$(awk '/kapal.sock/ {print $3}' "$work/result")
containerd=$(awk '/containerd.sock/ {print $3}' "$work/result")
python3 -c "print(f'kapald / containerd throughput: {$kapal / $containerd:.2f}x')"
