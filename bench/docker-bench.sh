#!/usr/bin/env bash
# The Docker front door with the real Docker CLI (the client of Debian's docker.io; no dockerd is
# ever run, so there is nothing of Docker's own to compare with): wall time of `docker run --rm
# IMAGE true` against `kapalctl run --rm` of the same image (the CRI door), of `docker ps` with
# CONTAINERS detached containers running, and kapald's RSS then. Medians of ROUNDS.
#
#   bench/docker-bench.sh [ROUNDS] [CONTAINERS]   (as root, after deploy/kapal.sh build + test)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
rounds=${1:-20}
containers=${2:-10}
docker_cli=${KAPAL_DOCKER_CLI:-/usr/local/libexec/kapal/docker}
[ -x "$docker_cli" ] || { echo "bench: $docker_cli missing (deploy/kapal.sh test installs it)" >&2; exit 1; }

bench_bridge=kapbench3
mkdir -p "$work/net.d"
cat >"$work/net.d/10-bench.conflist" <<CONFIG
{"cniVersion": "1.0.0", "name": "kapal-bench", "plugins": [
  {"type": "bridge", "bridge": "$bench_bridge", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "dataDir": "$work/ipam", "ranges": [[{"subnet": "10.88.253.0/24"}]]}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "loopback"}]}
CONFIG
start_registry
image="127.0.0.1:$port/bench/busybox:1"
push_busybox_image "$image" "sh true sleep" --config.cmd /bin/sh
start_kapald "$(printf '[cni]\nconf_dir = "%s"\n' "$work/net.d")"
export DOCKER_HOST="unix://$work/kapal/docker.sock" DOCKER_CONFIG="$work/docker-config"
kapalctl=("$build/ctl/kapalctl" --config /dev/null -r "unix://$work/kapal/kapal.sock")
"$docker_cli" pull -q "$image" >/dev/null

median_ms() {  # median_ms COMMAND...: runs it ROUNDS times, prints the median wall time in ms
  local times=()
  for _ in $(seq 1 "$rounds"); do
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null
    end=$(date +%s%N)
    times+=($(((end - start) / 1000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}'
}

echo "kapald $("$build/daemon/kapald" --version | awk '{print $2}'), docker CLI $("$docker_cli" --version | awk '{print $3}' | tr -d ,), runc $(runc --version | awk 'NR==1 {print $3}'), $(nproc) cores, $rounds rounds"
printf '| %-44s | %10s |\n' "figure" "median"
printf '| %-44s | %10s |\n' "--------------------------------------------" "----------"
printf '| %-44s | %7s ms |\n' "docker run --rm IMAGE true" "$(median_ms "$docker_cli" run --rm "$image" true)"
printf '| %-44s | %7s ms |\n' "kapalctl run --rm IMAGE true (CRI door)" "$(median_ms "${kapalctl[@]}" run --rm "$image" true)"
for i in $(seq 1 "$containers"); do "$docker_cli" run -d --name "bench$i" "$image" sleep 3600 >/dev/null; done
printf '| %-44s | %7s ms |\n' "docker ps, $containers containers running" "$(median_ms "$docker_cli" ps)"
printf '| %-44s | %7s ms |\n' "docker exec NAME true" "$(median_ms "$docker_cli" exec bench1 true)"
rss=$(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$kapald_pid/status")
printf '| %-44s | %6s MiB |\n' "kapald RSS with $containers containers" "$rss"
for i in $(seq 1 "$containers"); do "$docker_cli" rm -f "bench$i" >/dev/null; done
