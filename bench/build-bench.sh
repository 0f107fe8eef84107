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
start_docker_door kapbench4 10.88.252.0/24 "sh cp seq echo cat"

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
