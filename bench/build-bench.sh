#!/usr/bin/env bash
# Dockerfile builds: a 10-step Dockerfile (FROM, ARG, ENV, WORKDIR, COPY of a context of 300
# files / 12 MB, two RUNs, LABEL, EXPOSE, CMD) built by the real docker CLI (classic builder)
# and by kapalctl against one kapald: cold (--no-cache), fully cached, and after one context
# file changed (the COPY and what follows rebuilt). Medians of ROUNDS; kapald's peak RSS.
# Docker itself is not run (no dockerd here), so there is no Docker figure to compare with.
#
#   bench/build-bench.sh [ROUNDS]   (as root, after deploy/kapal.sh build + test)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
rounds=${1:-5}
docker_cli=${KAPAL_DOCKER_CLI:-/usr/local/libexec/kapal/docker}
[ -x "$docker_cli" ] || { echo "bench: $docker_cli missing (deploy/kapal.sh test installs it)" >&2; exit 1; }

bench_bridge=kapbench4
mkdir -p "$work/net.d"
cat >"$work/net.d/10-bench.conflist" <<CONFIG
{"cniVersion": "1.0.0", "name": "kapal-bench", "plugins": [
  {"type": "bridge", "bridge": "$bench_bridge", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "dataDir": "$work/ipam", "ranges": [[{"subnet": "10.88.252.0/24"}]]}},
  {"type": "loopback"}]}
CONFIG
start_registry
image="127.0.0.1:$port/bench/busybox:1"
push_busybox_image "$image" "sh cp seq echo cat" --config.cmd /bin/sh
start_kapald "$(printf '[cni]\nconf_dir = "%s"\n' "$work/net.d")"
export DOCKER_HOST="unix://$work/kapal/docker.sock" DOCKER_CONFIG="$work/docker-config"
kapalctl=("$build/ctl/kapalctl" --config /dev/null -r "unix://$work/kapal/kapal.sock")
"$docker_cli" pull -q "$image" >/dev/null

context="$work/context"
mkdir -p "$context/files"
for i in $(seq 1 300); do head -c 8192 /dev/urandom >"$context/files/f$i"; done
head -c $((10 * 1024 * 1024)) /dev/urandom >"$context/files/big.bin"
cat >"$context/Dockerfile" <<DOCKERFILE
FROM $image
ARG VERSION=1
ENV APP=/app
WORKDIR /app
COPY files/ /app/files/
RUN cp -r /bin /app/bin-copy && echo built \$VERSION > /app/built
RUN for i in \$(seq 1 200); do echo line \$i >> /app/log; done
LABEL bench=yes
EXPOSE 8080
CMD ["cat", "/app/built"]
DOCKERFILE

median_ms() {  # median_ms COMMAND...: runs it ROUNDS times, prints the median wall time in ms
  local times=()
  for _ in $(seq 1 "$rounds"); do
    local start end
    start=$(date +%s%N)
    "$@" >/dev/null || { echo "bench: $* failed" >&2; exit 1; }
    end=$(date +%s%N)
    times+=($(((end - start) / 1000)))
  done
  printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]/1000}'
}

changed_build() {  # one context file changed, then a build: COPY and the steps after it rerun
  head -c 8192 /dev/urandom >"$context/files/f1"
  "$@"
}

echo "kapald $("$build/daemon/kapald" --version | awk '{print $2}'), docker CLI $("$docker_cli" --version | awk '{print $3}' | tr -d ,), runc $(runc --version | awk 'NR==1 {print $3}'), $(nproc) cores, $rounds rounds"
echo "Dockerfile: 10 steps (2 RUN, 1 COPY of 301 files / 12.3 MB); context sent by each client"
printf '| %-52s | %10s |\n' "build" "median"
printf '| %-52s | %10s |\n' "----------------------------------------------------" "----------"
docker_build=("$docker_cli" build -q -t bench:docker "$context")
kapalctl_build=("${kapalctl[@]}" build -q -t bench:kapalctl "$context")
printf '| %-52s | %7s ms |\n' "docker build --no-cache (cold)" "$(median_ms "${docker_build[@]}" --no-cache)"
printf '| %-52s | %7s ms |\n' "kapalctl build --no-cache (cold)" "$(median_ms "${kapalctl_build[@]}" --no-cache)"
printf '| %-52s | %7s ms |\n' "docker build, all steps cached" "$(median_ms "${docker_build[@]}")"
printf '| %-52s | %7s ms |\n' "kapalctl build, all steps cached" "$(median_ms "${kapalctl_build[@]}")"
printf '| %-52s | %7s ms |\n' "docker build, one COPY'd file changed" "$(median_ms changed_build "${docker_build[@]}")"
printf '| %-52s | %7s ms |\n' "kapalctl build, one COPY'd file changed" "$(median_ms changed_build "${kapalctl_build[@]}")"
[ "$("$docker_cli" run --rm bench:docker)" = "built 1" ] || { echo "bench: the built image does not run" >&2; exit 1; }
hwm=$(awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$kapald_pid/status")
printf '| %-52s | %6s MiB |\n' "kapald peak RSS over all builds" "$hwm"
