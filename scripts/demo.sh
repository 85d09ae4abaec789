#!/usr/bin/env bash
# The main job, in one command (fresh Debian 12, as root): installs what is missing, builds
# ztunnel (Release), and runs the two-host HBONE demo in network namespaces (scripts/demo.py).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "demo: needs root (network namespaces, iptables); run: sudo $0" >&2
  exit 1
fi
./scripts/install-deps.sh
build=${BUILD_DIR:-build/release}
echo "demo: building ztunnel in $build"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DZT_BUILD_TESTS=OFF >/dev/null
cmake --build "$build" --target ztunnel tcp_probe
ZT_BUILD_DIR="$PWD/$build" exec /usr/bin/python3 scripts/demo.py
