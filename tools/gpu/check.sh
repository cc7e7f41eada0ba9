#!/usr/bin/env bash
# The GPU check, run on the GPU machine (one command, about 6 minutes with
# the benchmark, under 2 without):
# the tiny TinyLlama step on the CUDA device (NVRTC-compiled kernels,
# cuBLASLt GEMMs) against the CPU runtime's results recorded by prepare.sh,
# in f32 (TF32 GEMMs) and bf16, printed as a table: once with CUDA graphs
# (the default; the second of tokens.bin's two micro-batches is a captured,
# replayed step) and once kernel by kernel (TLC_CUDA_GRAPHS=0, into
# $OUT/no-graphs), so that a graph problem shows as a difference between the
# two tables. Needs build/tools/tlrun and gpu-check/ (carry both); writes the
# tables and raw results to $OUT.
set -uo pipefail
cd "$(dirname "$0")/../.."
out=gpu-check
results=${OUT:-/tmp}
source tools/gpu/env.sh
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | tee "$results/gpu.txt"
status=0
for graphs in 1 0; do
  dir=$results
  if [ "$graphs" = 0 ]; then dir=$results/no-graphs; mkdir -p "$dir"; echo "kernel by kernel (TLC_CUDA_GRAPHS=0):"; fi
  for dtype in f32 bf16; do
    if ! TLC_CUDA_GRAPHS=$graphs timeout 240 build/tools/tlrun eval "$out/tiny-$dtype.tlx" --device cuda \
        --weights "$out/weights.safetensors" --tokens "$out/tokens.bin" --json \
        --dump-grads "$dir/cuda-$dtype.safetensors" > "$dir/cuda-$dtype.json" 2> "$dir/cuda-$dtype.err"; then
      echo "tlrun --device cuda failed for $dtype (TLC_CUDA_GRAPHS=$graphs):"; cat "$dir/cuda-$dtype.err"; status=1
    fi
  done
  python3 "$out/compare.py" "$out" "$dir" | tee "$dir/table.txt" || status=1
done
# A failed capture falls back to kernel by kernel, which the tables cannot tell.
grep -h "warning: CUDA graph" "$results"/cuda-*.err 2>/dev/null | sed 's/^/note: /'
tools/gpu/nccl-check.sh || status=1
tools/gpu/dist-train-check.sh || status=1
python3 tools/gpu/hf_check.py gpu-check/hf | tee "$results/hf.txt" || status=1
# The benchmark only when the CUDA path is right (TLC_GPU_BENCH=0 skips it).
if [ "$status" = 0 ] && [ "${TLC_GPU_BENCH:-1}" != 0 ]; then tools/gpu/bench.sh; fi
exit $status
