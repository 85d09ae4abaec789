#!/usr/bin/env bash
# Installs every Debian 12 package the build, the tests, the fuzzers and the benchmarks need.
# Idempotent: packages already present are skipped, and apt is only asked when something is missing.
# Run as root (or with sudo) on Debian 12 (bookworm).
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build pkg-config clang llvm libclang-rt-14-dev lld git
  # libraries
  liburing-dev libssl-dev libnghttp2-dev libprotobuf-dev protobuf-compiler libgrpc++-dev
  protobuf-compiler-grpc libfmt-dev libspdlog-dev libyaml-cpp-dev nlohmann-json3-dev libexpected-dev
  libbpf-dev libelf-dev zlib1g-dev bpftool
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  iptables iproute2 iperf3 stunnel4 socat openssl procps psmisc kmod
  python3 python3-h2 python3-hyperframe python3-hpack python3-cryptography
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "install-deps: done"
