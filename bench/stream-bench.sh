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

bench_bridge=kapbench1
mkdir -p "$work/net.d"
cat >"$work/net.d/10-bench.conflist" <<CONFIG
{"cniVersion": "1.0.0", "name": "kapal-bench", "plugins": [
  {"type": "bridge", "bridge": "$bench_bridge", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "dataDir": "$work/ipam",
            "ranges": [[{"subnet": "10.88.251.0/24"}]]}},
  {"type": "loopback"}]}
CONFIG

start_registry
pause_ref=$(build_pause_image)
start_kapald "$(printf '[cni]\nconf_dir = "%s"\n' "$work/net.d")"
start_containerd "$(cat <<CONFIG
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_ref"
  restrict_oom_score_adj = true
[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "/usr/lib/cni"
  conf_dir = "$work/net.d"
CONFIG
)"

echo "containerd $(containerd --version | awk '{print $3}'), kapald $("$build/daemon/kapald" --version | awk '{print $2}'), runc $(runc --version | awk 'NR==1 {print $3}'), $(nproc) cores"
"$build/bench/kapal-stream-bench" --registry-port "$port" --rounds "$rounds" \
  --megabytes "$megabytes" \
  --target "kapald,unix://$work/kapal/kapal.sock" \
  --target "containerd,unix://$work/containerd/containerd.sock"
