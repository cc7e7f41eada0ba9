#!/usr/bin/env bash
# Configures (once) and builds tlc into build/ with ninja and ccache.
# Usage: tools/build.sh [ninja targets...]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja \
    -DCMAKE_BUILD_TYPE=Release \
    -DMLIR_DIR=/usr/lib/llvm-19/lib/cmake/mlir \
    -DLLVM_EXTERNAL_LIT=/usr/lib/llvm-19/build/utils/lit/lit.py
fi
# Two cores and heavy MLIR headers: two jobs keep memory in check.
ninja -C "$BUILD_DIR" -j "${JOBS:-$(nproc)}" "$@"
