#!/usr/bin/env bash
# The whole CRI validation suite (../shared/critest/run.sh) against KAPALD, strict: a spec critest
# skips because kapald lacks a feature counts as a failure.
# run.sh exits 2 when the harness itself could not run (a registry port taken, its lock held):
# that is retried once after a pause, since it says nothing about kapald. Spec failures (exit 1)
# are never retried.
set -uo pipefail
suite=$1
kapald=$2
for attempt in 1 2; do
  "$suite" --kapald "$kapald" --strict
  code=$?
  [ "$code" -ne 2 ] && exit "$code"
  echo "run-critest: the harness could not run (exit 2, attempt $attempt)" >&2
  sleep 5
done
exit 2
