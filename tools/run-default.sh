#!/usr/bin/env bash
# Sets up, builds, and runs the main job on the built-in default: emit the
# TinyLlama `tiny` preset as tl MLIR and summarise it.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
tools/build.sh tlc tlc-opt
mkdir -p out
build/tools/tlc emit tinyllama --preset tiny -o out/tinyllama.mlir
build/tools/tlc info out/tinyllama.mlir
echo "wrote out/tinyllama.mlir"
