#!/usr/bin/env bash
# Sets up every dependency, builds, and runs all tests: lit, GoogleTest and
# the PyTorch parity test (everything registered with CTest).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
tools/build.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "$(nproc)" "$@"
