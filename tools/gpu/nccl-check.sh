#!/usr/bin/env bash
# The NCCL part of the GPU check (called by check.sh on the GPU machine):
# every collective through the NCCL communicator with one rank, on device
# buffers, f32 and bf16, checked against host references by tl-comm-check
# (prepare.sh copies it into gpu-check/). One GPU allows one NCCL rank;
# several ranks need several GPUs: mpirun -np N tl-comm-check --backend nccl.
# Writes $OUT/nccl.txt; exit status 0 when every check passed.
set -uo pipefail
cd "$(dirname "$0")/../.."
results=${OUT:-/tmp}
if timeout 120 gpu-check/tl-comm-check --backend nccl --timeout 60 > "$results/nccl.txt" 2>&1; then
  tail -n 1 "$results/nccl.txt"
else
  echo "NCCL communicator check failed:"; cat "$results/nccl.txt"; exit 1
fi
