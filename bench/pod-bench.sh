#!/usr/bin/env bash
# Pod lifecycle of kapald and of containerd (Debian's package, CRI plugin, runc) in one run:
# same CNI network (a bridge of this run's own on 10.88.250.0/24, no masquerade), same registry
# on 127.0.0.1, same busybox image. containerd needs a pause image; the run builds one from
# busybox (`sleep`) and pushes it to the same registry.
#
#   bench/pod-bench.sh [ROUNDS] [CONCURRENT] [STATS_PODS]   (as root, after deploy/kapal.sh build)
#
# STATS_PODS (50) pods then run at once on each runtime while ListContainerStats and
# ListPodSandboxStats are timed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
rounds=${1:-20}
concurrent=${2:-10}
stats_pods=${3:-50}

bench_bridge=kapbench0
mkdir -p "$work/net.d"
cat >"$work/net.d/10-bench.conflist" <<CONFIG
{"cniVersion": "1.0.0", "name": "kapal-bench", "plugins": [
  {"type": "bridge", "bridge": "$bench_bridge", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "dataDir": "$work/ipam",
            "ranges": [[{"subnet": "10.88.250.0/24"}]]}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
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
"$build/bench/kapal-pod-bench" --registry-port "$port" --rounds "$rounds" --concurrent "$concurrent" \
  --stats-pods "$stats_pods" \
  --target "kapald,unix://$work/kapal/kapal.sock,$kapald_pid,$work/kapal" \
  --target "containerd,unix://$work/containerd/containerd.sock,$containerd_pid,$work/containerd" \
  | tee "$work/result"
read -r _ _ kapal_start kapal_many kapal_shim kapal_cstats kapal_pstats < <(grep '^RESULT kapald' "$work/result")
read -r _ _ ctr_start ctr_many ctr_shim ctr_cstats ctr_pstats < <(grep '^RESULT containerd' "$work/result")
python3 - "$kapal_start" "$ctr_start" "$kapal_many" "$ctr_many" "$kapal_shim" "$ctr_shim" \
  "$kapal_cstats" "$ctr_cstats" "$kapal_pstats" "$ctr_pstats" "$stats_pods" <<'PY'
import sys
k, c, km, cm, ks, cs, kc, cc, kp, cp, n = map(float, sys.argv[1:])
print(f"runp+create+start median: kapald {k:.1f} ms, containerd {c:.1f} ms: kapald takes {k / c:.2f}x containerd's time")
print(f"pods at once: kapald {km:.0f} ms, containerd {cm:.0f} ms: {km / cm:.2f}x")
print(f"shim RSS: kapald {ks:.2f} MiB, containerd {cs:.2f} MiB")
if n > 0:
    print(f"with {n:.0f} pods, median: ListContainerStats kapald {kc:.1f} ms, containerd {cc:.1f} ms; "
          f"ListPodSandboxStats kapald {kp:.1f} ms, containerd {cp:.1f} ms")
PY
