#!/usr/bin/env bash
# Sets up, builds, and runs the main job on the built-in default: emit the
# TinyLlama `tiny` preset as tl MLIR, summarise it and compile it to a .tlx.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
tools/build.sh tlc tlc-opt tlrun
mkdir -p out
build/tools/tlc emit tinyllama --preset tiny -o out/tinyllama.mlir
build/tools/tlc info out/tinyllama.mlir
build/tools/tlc compile out/tinyllama.mlir -o out/tinyllama.tlx --dump-kernels out/kernels
echo "wrote out/tinyllama.mlir, out/tinyllama.tlx and out/kernels/"
