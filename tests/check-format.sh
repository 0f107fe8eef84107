#!/usr/bin/env bash
# Fails when a C++ file of ours differs from what clang-format (.clang-format at the root) makes
# of it. Run `clang-format -i FILE` to fix one.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
mapfile -t files < <(git ls-files '*.cc' '*.h' | grep -v '^api/cri_messages.h$')
clang-format --dry-run --Werror "${files[@]}"
echo "${#files[@]} files formatted as .clang-format says"
