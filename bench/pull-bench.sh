#!/usr/bin/env bash
# Pull throughput of kapald and of containerd (Debian's package, CRI plugin) in one run: both on
# their own root, state and socket under a temporary directory, pulling the same image from a
# docker-registry on 127.0.0.1. Prints each one's median seconds and MB/s, and the ratio.
#
#   bench/pull-bench.sh [ROUNDS]        (as root, after deploy/kapal.sh build)
#
# KAPALD_BEFORE=DIR (the folder of an earlier commit's kapald and kapal-shim) pulls with that
# kapald too.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
rounds=${1:-3}

start_registry
start_kapald
before=()
if [ -n "${KAPALD_BEFORE:-}" ]; then
  start_kapald_before "$KAPALD_BEFORE"
  before=("unix://$work/kapal-before/kapal.sock")
fi
start_containerd

echo "containerd $(containerd --version | awk '{print $3}'), kapald $("$build/daemon/kapald" --version | awk '{print $2}'), $(nproc) cores"
"$build/bench/kapal-pull-bench" --registry-port "$port" --rounds "$rounds" \
  "unix://$work/kapal/kapal.sock" "${before[@]}" "unix://$work/containerd/containerd.sock" |
  tee "$work/result"
kapal=$(awk '/kapal\/kapal.sock/ {print $3}' "$work/result")
containerd=$(awk '/containerd.sock/ {print $3}' "$work/result")
python3 -c "print(f'kapald / containerd throughput: {$kapal / $containerd:.2f}x')"
if [ ${#before[@]} -gt 0 ]; then
  kapal_before=$(awk '/kapal-before\/kapal.sock/ {print $3}' "$work/result")
  python3 -c "print(f'kapald (before) / containerd throughput: {$kapal_before / $containerd:.2f}x')"
fi
