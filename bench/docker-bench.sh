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
start_docker_door kapbench3 10.88.253.0/24 "sh true sleep"

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
