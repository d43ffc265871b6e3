#!/usr/bin/env bash
# Run every benchmark; pass --quick for the short versions. Exit status is 0 even when a
# target is OVER (benchmarks report, they do not gate); non-zero only if one crashed.
# The summary at the end repeats each benchmark's final `target:` line.
set -u
cd "$(dirname "$0")/.."
PY=.venv/bin/python
status=0
summary=()
for bench in apply_noop apply_scale fingerprint_scale plan_scale online_writes cache_noop cold_scale; do
    echo "=== bench/$bench.py $*"
    start=$(date +%s)
    if ! out=$("$PY" "bench/$bench.py" "$@" 2>&1); then
        status=1
    fi
    printf '%s\n' "$out"
    line=$(printf '%s\n' "$out" | grep '^target:' | tail -n 1)
    summary+=("$bench ($(( $(date +%s) - start ))s): ${line:-no target line (crashed?)}")
    echo
done
echo "=== summary"
printf '%s\n' "${summary[@]}"
exit $status
