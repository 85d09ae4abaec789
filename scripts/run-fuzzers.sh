#!/usr/bin/env bash
# Builds every libFuzzer target (clang, ASan+UBSan) and runs each for N seconds (default 30)
# starting from its committed seed corpus. Exits non-zero on the first crash.
#   scripts/run-fuzzers.sh [seconds] [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
build=${2:-build/fuzz}
CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DZT_BUILD_FUZZ=ON -DZT_BUILD_TESTS=OFF -DZT_BUILD_BENCH=OFF >/dev/null
cmake --build "$build"
failed=0
passed=0
for fuzzer in "$build"/tests/fuzz/fuzz_*; do
  name=$(basename "$fuzzer")
  name=${name#fuzz_}
  corpus=tests/fuzz/corpus/$name
  work=$(mktemp -d)
  seeds=()
  [ -d "$corpus" ] && seeds=("$corpus")
  echo "fuzz: $name for ${seconds}s"
  if "$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
       -artifact_prefix="$work/" "$work" "${seeds[@]}" >"$work/log" 2>&1; then
    passed=$((passed + 1))
    grep -E "^stat::number_of_executed_units" "$work/log" || true
    rm -rf "$work"
  else
    failed=$((failed + 1))
    tail -60 "$work/log"
    echo "fuzz: $name FAILED; artifacts in $work"
  fi
done
echo "fuzz: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
