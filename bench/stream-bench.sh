#!/usr/bin/env bash
# Streaming of kapald and of containerd (Debian's package, CRI plugin, runc) in one run, with
# one SPDY/3.1 client (as crictl and kubelet speak it): time to the first byte and to the exit
# status of `exec echo hi`, and the throughput of a port-forwarded 100 MB download from a
# busybox httpd in a pod. Same CNI network (a bridge of this run's own on 10.88.251.0/24, no
# masquerade), same registry on 127.0.0.1, same busybox image.
#
#   bench/stream-bench.sh [ROUNDS] [MEGABYTES]   (as root, after deploy/kapal.sh build)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
rounds=${1:-30}
megabytes=${2:-100}

start_pod_runtimes kapbench1 10.88.251.0/24
"$build/bench/kapal-stream-bench" --registry-port "$port" --rounds "$rounds" \
  --megabytes "$megabytes" \
  --target "kapald,unix://$work/kapal/kapal.sock" \
  --target "containerd,unix://$work/containerd/containerd.sock"
