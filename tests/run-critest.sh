#!/usr/bin/env bash
# The whole CRI validation suite (../shared/critest/run.sh) against KAPALD, strict: a spec critest
# skips because kapald lacks a feature counts as a failure.
# run.sh exits 2 when the harness itself could not run. When that happened in its own steps
# before kapald starts (a registry port taken, its lock held, or its image pushes: three tags of
# one repository pushed at once race in docker-registry 2.8, once in 30 rounds here), it is run again,
# up to 3 attempts: that says nothing about kapald. kapald failing to start and spec failures
# (exit 1) are never retried.
set -uo pipefail
suite=$1
kapald=$2
log=$(mktemp /tmp/kapal-run-critest.XXXXXX) || exit 2
trap 'rm -f "$log"' EXIT
for attempt in 1 2 3; do
  "$suite" --kapald "$kapald" --strict 2>&1 | tee "$log"
  code=${PIPESTATUS[0]}
  [ "$code" -ne 2 ] && exit "$code"
  grep -q -e '^run\.sh: pushing the test images failed' -e '^run\.sh: docker-registry did not come up' \
    -e '^run\.sh: another run\.sh holds' "$log" || exit 2
  echo "run-critest: the harness could not set itself up (attempt $attempt)" >&2
  sleep 5
done
exit 2
