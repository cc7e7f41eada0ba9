#!/usr/bin/env bash
# Installs every build and test dependency of tlc from Debian 12's packages.
# Idempotent: packages already present are skipped, so re-running is cheap.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  llvm-19-dev llvm-19-tools libmlir-19-dev mlir-19-tools
  libsentencepiece-dev sentencepiece libfmt-dev libgtest-dev googletest
  nlohmann-json3-dev libopenblas-dev libopenblas0-openmp libcli11-dev
  openmpi-bin libopenmpi-dev
  python3 python3-torch python3-numpy
  time  # GNU time: the memory benchmarks (tools/bench) read each rank's peak RSS
  fortunes
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all ${#PACKAGES[@]} packages present"
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "setup: done"
