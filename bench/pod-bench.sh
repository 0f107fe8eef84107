#!/usr/bin/env bash
# Pod lifecycle of kapald and of containerd (Debian's package, CRI plugin, runc) in one run:
# same CNI network (a bridge of this run's own on 10.88.250.0/24, no masquerade), same registry
# on 127.0.0.1, same busybox image. containerd needs a pause image; the run builds one from
# busybox (`sleep`) and pushes it to the same registry.
#
#   bench/pod-bench.sh [ROUNDS] [CONCURRENT] [STATS_PODS] [CHURN_PODS] [CHURN_WORKERS]
#                                                   (as root, after deploy/kapal.sh build)
#
# KAPALD_BEFORE=DIR (the folder of an earlier commit's kapald and kapal-shim) measures that
# kapald too.
#
# STATS_PODS (50) pods then run at once on each runtime while ListContainerStats and
# ListPodSandboxStats are timed.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
rounds=${1:-20}
concurrent=${2:-10}
stats_pods=${3:-50}
churn_pods=${4:-50}
churn_workers=${5:-5}

start_pod_runtimes kapbench0 10.88.250.0/24
before=()
if [ -n "${KAPALD_BEFORE:-}" ]; then
  before=(--target "kapald-before,unix://$work/kapal-before/kapal.sock,$kapald_before_pid,$work/kapal-before")
fi
"$build/bench/kapal-pod-bench" --registry-port "$port" --rounds "$rounds" --concurrent "$concurrent" \
  --stats-pods "$stats_pods" --churn-pods "$churn_pods" --churn-workers "$churn_workers" \
  --target "kapald,unix://$work/kapal/kapal.sock,$kapald_pid,$work/kapal" "${before[@]}" \
  --target "containerd,unix://$work/containerd/containerd.sock,$containerd_pid,$work/containerd" \
  | tee "$work/result"
read -r _ _ kapal_start kapal_many kapal_shim kapal_cstats kapal_pstats kapal_churn < <(grep '^RESULT kapald' "$work/result")
read -r _ _ ctr_start ctr_many ctr_shim ctr_cstats ctr_pstats ctr_churn < <(grep '^RESULT containerd' "$work/result")
python3 - "$kapal_start" "$ctr_start" "$kapal_many" "$ctr_many" "$kapal_shim" "$ctr_shim" \
  "$kapal_cstats" "$ctr_cstats" "$kapal_pstats" "$ctr_pstats" "$stats_pods" \
  "$kapal_churn" "$ctr_churn" "$churn_pods" "$churn_workers" <<'PY'
import sys
k, c, km, cm, ks, cs, kc, cc, kp, cp, n, kch, cch, chn, chw = map(float, sys.argv[1:])
print(f"runp+create+start median: kapald {k:.1f} ms, containerd {c:.1f} ms: kapald takes {k / c:.2f}x containerd's time")
print(f"pods at once: kapald {km:.0f} ms, containerd {cm:.0f} ms: {km / cm:.2f}x")
print(f"shim RSS: kapald {ks:.2f} MiB, containerd {cs:.2f} MiB")
if n > 0:
    print(f"with {n:.0f} pods, median: ListContainerStats kapald {kc:.1f} ms, containerd {cc:.1f} ms; "
          f"ListPodSandboxStats kapald {kp:.1f} ms, containerd {cp:.1f} ms")
if chn > 0:
    print(f"churn of {chn:.0f} pods by {chw:.0f} workers: kapald {kch / 1000:.2f} s, "
          f"containerd {cch / 1000:.2f} s: {kch / cch:.2f}x")
PY
if [ ${#before[@]} -gt 0 ]; then
  read -r _ _ before_start before_many _ _ _ before_churn < <(grep '^RESULT kapald-before' "$work/result")
  python3 - "$before_start" "$ctr_start" "$before_many" "$ctr_many" "$before_churn" "$ctr_churn" <<'PY'
import sys
b, c, bm, cm, bch, cch = map(float, sys.argv[1:])
print(f"kapald before: runp+create+start {b:.1f} ms ({b / c:.2f}x), pods at once {bm:.0f} ms "
      f"({bm / cm:.2f}x)" + (f", churn {bch / 1000:.2f} s ({bch / cch:.2f}x)" if cch > 0 else ""))
PY
fi
