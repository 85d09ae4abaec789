#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine, as root:
#   installs dependencies, builds (Debug, -Werror), builds and runs every fuzzer for 30 s
#   (clang, ASan+UBSan), then runs all unit, integration and network-namespace tests with ctest.
# Environment: FUZZ_SECONDS (default 30; 0 skips fuzzing), BUILD_DIR (default build/ci).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh

build=${BUILD_DIR:-build/ci}
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DZT_WERROR=ON -DZT_BUILD_BENCH=ON
cmake --build "$build"

fuzz_seconds=${FUZZ_SECONDS:-30}
if [ "$fuzz_seconds" -gt 0 ]; then
  ./scripts/run-fuzzers.sh "$fuzz_seconds" build/fuzz
fi

# Tests that need root skip with a visible reason elsewhere; here (CI runs as root) they run.
ctest --test-dir "$build" --output-on-failure -j2 --timeout 900
