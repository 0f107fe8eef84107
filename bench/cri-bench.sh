#!/usr/bin/env bash
# kapald and containerd driven by outside CRI clients, the way issue 12's table measures them:
# critest's own benchmarks (`critest -benchmark`: CreatePod, CreateContainer, StartContainer and
# the rest, one sample after the other) and crictl processes (pods created at once; churn of
# pods created, started, stopped and removed by parallel workers). Same run, same CNI bridge
# (no masquerade), same registry on 127.0.0.1, same busybox image for both runtimes; the
# runtimes are measured one after the other.
#
#   bench/cri-bench.sh [SAMPLES] [AT_ONCE] [CHURN_PODS] [CHURN_WORKERS]   (as root, after a build)
#
# KAPALD_BEFORE=DIR (the folder of an earlier commit's kapald and kapal-shim) measures that
# kapald too, in the same run, for before/after figures.
#
# critest and crictl v1.26.1 come from ../shared/critest/bin (CRITEST_BIN=DIR for others).
# critest names its image registry.k8s.io/e2e-test-images/busybox:1.29-2: the run's registry
# holds busybox under that path and both runtimes use it as registry.k8s.io's mirror.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
samples=${1:-20}
at_once=${2:-10}
churn_pods=${3:-50}
churn_workers=${4:-5}
tools=${CRITEST_BIN:-$repo/../shared/critest/bin}
for tool in critest crictl; do
  if [ ! -x "$tools/$tool" ]; then
    echo "cri-bench: no $tools/$tool (set CRITEST_BIN to a folder with critest and crictl)" >&2
    exit 2
  fi
done
for n in "$samples" "$at_once" "$churn_pods" "$churn_workers"; do
  if ! [[ $n =~ ^[0-9]+$ ]] || [ "$n" -lt 1 ] || [ "$n" -gt 500 ]; then
    echo "cri-bench: counts are 1..500 (got $n)" >&2
    exit 2
  fi
done

kapal_mirror() {
  printf '[registries."registry.k8s.io"]\nmirrors = ["http://127.0.0.1:%s"]\nfallback_to_origin = false\n' "$port"
}
containerd_mirror() {
  printf '[plugins."io.containerd.grpc.v1.cri".registry.mirrors."registry.k8s.io"]\n  endpoint = ["http://127.0.0.1:%s"]\n' "$port"
}
# kapald's metrics tell where the time of each call went (kapal_runtime_phase_seconds).
kapal_metrics_address=127.0.0.1:$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
start_pod_runtimes kapbench1 10.88.251.0/24 kapal_mirror containerd_mirror
image=registry.k8s.io/e2e-test-images/busybox:1.29-2
push_busybox_image "127.0.0.1:$port/e2e-test-images/busybox:1.29-2" "sh top sleep" \
  --config.cmd /bin/sh

cat >"$work/params.yaml" <<PARAMS
containersNumber: $samples
containersNumberParallel: 1
podsNumber: $samples
podsNumberParallel: 1
PARAMS
cat >"$work/pod.json.in" <<'POD'
{"metadata": {"name": "NAME", "uid": "uid-NAME", "namespace": "cri-bench", "attempt": 0},
 "linux": {}, "log_directory": "LOGDIR"}
POD
cat >"$work/container.json" <<CONTAINER
{"metadata": {"name": "sleeper"}, "image": {"image": "$image"},
 "command": ["/bin/sleep", "3600"], "log_path": "sleeper.log", "linux": {}}
CONTAINER

# One pod through crictl: runp; with "start" or "churn" then create and start a container; with
# "churn" then stopp and rmp.
crictl_pod() {  # crictl_pod ENDPOINT NAME pod|start|churn
  local endpoint=$1 name=$2 pod ctr
  local cri=("$tools/crictl" --runtime-endpoint "$endpoint" --image-endpoint "$endpoint" --timeout 60s)
  sed -e "s|NAME|$name|g" -e "s|LOGDIR|$work/logs/$name|" "$work/pod.json.in" >"$work/pods/$name.json"
  pod=$("${cri[@]}" runp "$work/pods/$name.json")
  [ "$3" = pod ] && return
  ctr=$("${cri[@]}" create "$pod" "$work/container.json" "$work/pods/$name.json")
  "${cri[@]}" start "$ctr" >/dev/null
  if [ "$3" = churn ]; then
    "${cri[@]}" stopp "$pod" >/dev/null
    "${cri[@]}" rmp "$pod" >/dev/null
  fi
}

wait_all() {  # wait_all PID...: fails when one of them failed
  local pid failed=0
  for pid in "$@"; do wait "$pid" || failed=1; done
  return "$failed"
}

now_ms() { echo $(($(date +%s%N) / 1000000)); }

measure() {  # measure TARGET ENDPOINT
  local target=$1 endpoint=$2
  local cri=("$tools/crictl" --runtime-endpoint "$endpoint" --image-endpoint "$endpoint" --timeout 60s)
  mkdir -p "$work/$target-out" "$work/pods" "$work/logs"
  "${cri[@]}" pull "$image" >/dev/null
  # critest removes what it made; its benchmarks expect to be the runtime's only user.
  "$tools/critest" -benchmark -runtime-endpoint "$endpoint" -image-endpoint "$endpoint" \
    -benchmarking-params-file "$work/params.yaml" -benchmarking-output-dir "$work/$target-out" \
    -ginkgo.focus 'benchmark about (operations on PodSandbox|basic operations on Container)' \
    -ginkgo.no-color >"$work/$target-critest.log" 2>&1 || {
    echo "cri-bench: critest -benchmark failed against $target; its log:" >&2
    tail -40 "$work/$target-critest.log" >&2
    exit 1
  }
  if [ "$target" = kapald ]; then
    curl -sf "http://$kapal_metrics_address/metrics" >"$work/kapald-phases.prom"
  fi

  local start i w workers mode
  for mode in pod start; do
    workers=()
    start=$(now_ms)
    for i in $(seq 1 "$at_once"); do
      crictl_pod "$endpoint" "$target-$mode-$i" "$mode" &
      workers+=($!)
    done
    # Only the workers: a bare `wait` would wait for the registry and the runtimes too.
    wait_all "${workers[@]}"
    echo "$(($(now_ms) - start))" >"$work/$target-at-once-$mode"
    "${cri[@]}" rmp -fa >/dev/null
  done

  workers=()
  start=$(now_ms)
  for w in $(seq 0 $((churn_workers - 1))); do
    (
      for i in $(seq "$w" "$churn_workers" $((churn_pods - 1))); do
        crictl_pod "$endpoint" "$target-churn-$i" churn
      done
    ) &
    workers+=($!)
  done
  wait_all "${workers[@]}"
  echo "$(($(now_ms) - start))" >"$work/$target-churn"
  "${cri[@]}" rmp -fa >/dev/null
  rm -rf "$work/pods" "$work/logs"
}

measure kapald "unix://$work/kapal/kapal.sock"
if [ -n "${KAPALD_BEFORE:-}" ]; then
  measure kapald-before "unix://$work/kapal-before/kapal.sock"
fi
measure containerd "unix://$work/containerd/containerd.sock"

python3 - "$work" "$samples" "$at_once" "$churn_pods" "$churn_workers" <<'PY'
import json, statistics, sys
work, samples, at_once, churn_pods, churn_workers = sys.argv[1], *map(int, sys.argv[2:])

def medians(target, name):
    with open(f"{work}/{target}-out/{name}") as f:
        data = json.load(f)
    ops = data["operationsNames"]
    columns = list(zip(*(p["operationsDurationsNs"] for p in data["datapoints"])))
    return {op: statistics.median(col) / 1e6 for op, col in zip(ops, columns)}

result = {}
targets = ["kapald", "containerd"]
try:
    open(f"{work}/kapald-before-churn").close()
    targets.insert(1, "kapald-before")
except FileNotFoundError:
    pass
for target in targets:
    row = medians(target, "pod_benchmark_data.json")
    row.update(medians(target, "container_benchmark_data.json"))
    for mode in ("pod", "start"):
        with open(f"{work}/{target}-at-once-{mode}") as f:
            row[f"at_once_{mode}"] = float(f.read())
    with open(f"{work}/{target}-churn") as f:
        row["churn"] = float(f.read())
    result[target] = row

c = result["containerd"]
# Mean time of each phase over the critest samples, from kapald's histogram.
sums, counts = {}, {}
with open(f"{work}/kapald-phases.prom") as f:
    for line in f:
        if not line.startswith("kapal_runtime_phase_seconds_"):
            continue
        name, value = line.rsplit(" ", 1)
        kind = name[len("kapal_runtime_phase_seconds_"):name.index("{")]
        labels = dict(part.split("=", 1) for part in name[name.index("{") + 1:-1].split(","))
        key = (labels["operation"].strip('"'), labels["phase"].strip('"'))
        if kind == "sum":
            sums[key] = float(value)
        elif kind == "count":
            counts[key] = float(value)
print("kapald, where a call's time goes (mean ms per phase over the critest samples):")
order = {
    "run_pod": ["checks", "files", "namespaces", "infra", "cni_add", "record"],
    "create_container": ["checks", "snapshot", "mount", "spec", "record", "runtime_create"],
    "start_container": ["checks", "runtime_start", "record"],
    "stop_container": ["stop_signal", "exit_after_stop_signal", "kill", "exit_after_kill"],
    "stop_pod": ["pid_namespace", "containers", "infra", "cni_del", "record"],
    "remove_container": ["stop", "clean_up", "record"],
    "remove_pod": ["stop", "containers", "files", "record"],
}
for operation, phases in order.items():
    means = [(p, sums[(operation, p)] * 1000 / counts[(operation, p)]) for p in phases
             if counts.get((operation, p))]
    if means:
        print(f"  {operation:17} {sum(ms for _, ms in means):5.1f} = " +
              " + ".join(f"{p} {ms:.1f}" for p, ms in means))
print(f"critest -benchmark, medians of {samples} samples (ms): " + " / ".join(targets))
for op in ("CreatePod", "StatusPod", "StopPod", "RemovePod", "CreateContainer",
           "StartContainer", "StatusContainer", "StopContainer", "RemoveContainer"):
    print(f"  {op:16}" + "".join(f" {result[t][op]:8.1f}" for t in targets))


def line(what, unit, scale, key):
    """One row: each target's figure and, for kapald and its older build, the ratio."""
    figures = ", ".join(f"{t} {result[t][key] / scale:.{2 if unit == 's' else 0}f} {unit}"
                        for t in targets)
    ratios = ", ".join(f"{t} {result[t][key] / c[key]:.2f}x" for t in targets if t != "containerd")
    print(f"{what}: {figures}; of containerd's: {ratios}")


for t in targets:
    r = result[t]
    r["sum"] = r["CreatePod"] + r["CreateContainer"] + r["StartContainer"]
    print(f"CreatePod + CreateContainer + StartContainer, {t}: {r['CreatePod']:.1f} + "
          f"{r['CreateContainer']:.1f} + {r['StartContainer']:.1f} = {r['sum']:.1f} ms")
line("CreatePod + CreateContainer + StartContainer", "ms", 1, "sum")
line(f"{at_once} pods at once (crictl runp)", "ms", 1, "at_once_pod")
line(f"{at_once} pods at once (crictl runp+create+start)", "ms", 1, "at_once_start")
line(f"churn of {churn_pods} pods by {churn_workers} crictl workers", "s", 1000, "churn")
PY
