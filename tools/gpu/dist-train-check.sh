#!/usr/bin/env bash
# The data-parallel trainer on a GPU (called by check.sh on the GPU machine):
# the tiny preset trains 6 steps on the CUDA device through the NCCL
# communicator with one rank (TLC_COMM_BACKEND=nccl: device-buffer
# collectives, zero=2 buckets, parameter all-gather), and its losses are
# compared with the MPI path's on the CPU (2 ranks, recorded by prepare.sh in
# gpu-check/dist-ref/metrics.jsonl). The GPU's f32 GEMMs use TF32, so the
# bound is 1e-2 relative, not bitwise. Writes $OUT/dist-train.txt.
set -uo pipefail
cd "$(dirname "$0")/../.."
results=${OUT:-/tmp}
run=$(mktemp -d)
if ! TLC_COMM_BACKEND=nccl timeout 240 build/tools/tlrun train gpu-check/tiny-f32.tlx --device cuda \
    --data gpu-check/dist-data --out "$run/nccl" --set "$(cat gpu-check/dist-sets.txt)" > "$results/dist-train.txt" 2>&1; then
  echo "tlrun train with NCCL failed:"; cat "$results/dist-train.txt"; exit 1
fi
python3 - "$run/nccl/metrics.jsonl" gpu-check/dist-ref/metrics.jsonl <<'PY' | tee -a "$results/dist-train.txt"
import json, sys
gpu = [json.loads(l) for l in open(sys.argv[1])]
cpu = [json.loads(l) for l in open(sys.argv[2])]
worst = max(abs(g["loss"] - c["loss"]) / abs(c["loss"]) for g, c in zip(gpu, cpu))
print(f"NCCL (1 GPU rank) vs MPI (2 CPU ranks): {len(gpu)} steps, worst loss difference {worst:.2e} relative")
sys.exit(0 if len(gpu) == len(cpu) and worst < 1e-2 else 1)
PY
