#!/usr/bin/env bash
# Runs after every end-to-end test (ctest fixture cleanup): fails when the tests left anything
# behind on the host: mounts, processes, network devices, cgroups or temporary directories.
set -uo pipefail
problems=()

mounts=$(awk '$5 ~ /^\/tmp\/kapal-(e2e|cni|registry)\./ {print $5}' /proc/self/mountinfo)
[ -n "$mounts" ] && problems+=("mounts: $mounts")

procs=$(pgrep -a -f '/tmp/kapal-(e2e|cni|registry)\.' | grep -v check-leftovers || true)
[ -n "$procs" ] && problems+=("processes: $procs")

# Pod infra processes (kapal-shim --infra), but those of the demo's kapald.
for pid in $(pgrep -f '^[^ ]*kapal-shim --infra$' || true); do
  grep -qx "$pid" /run/kapal/pods/*/infra.pid 2>/dev/null && continue
  problems+=("pod infra process: $pid")
done

links=$(ip -o link show 2>/dev/null | awk -F': ' '$2 ~ /^kapt[0-9]+/ {print $2}')
[ -n "$links" ] && problems+=("network devices: $links")

# Default pod cgroups are /kapal/POD_ID; pods of a kapald outside the tests (the demo's, in
# /run/kapal) are not the tests' business.
for dir in /sys/fs/cgroup/*/kapal/*/; do
  [ -d "$dir" ] || continue
  pod=$(basename "$dir")
  [ -d "/run/kapal/pods/$pod" ] && continue
  problems+=("cgroup: $dir")
done

# Cgroup parents the tests name themselves.
for dir in /sys/fs/cgroup/kapal-test-* /sys/fs/cgroup/*/kapal-test-*; do
  [ -d "$dir" ] && problems+=("cgroup: $dir")
done

dirs=$(ls -d /tmp/kapal-e2e.* /tmp/kapal-cni.* 2>/dev/null)
[ -n "$dirs" ] && problems+=("temporary directories: $dirs")

if [ ${#problems[@]} -gt 0 ]; then
  printf 'left behind by the tests:\n' >&2
  printf '  %s\n' "${problems[@]}" >&2
  exit 1
fi
echo "nothing left behind"
