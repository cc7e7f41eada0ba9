#!/usr/bin/env bash
# The GPU benchmark (called by check.sh after the correctness checks pass, or
# alone): `tlrun train --device cuda` on the anchor's two models -- Llama
# 124M (B=16, T=1024) and TinyLlama 1.1B (B=8, T=2048), bf16 with f32 master
# weights, AdamW, clipping -- and, in the same call, the PyTorch anchor script
# (../shared/anchors/torch_baseline.py, copied by prepare.sh) on its eager
# configurations. Prints tokens/s side by side with the ratio and the
# anchor's recorded H100 figures (torch.compile included). Needs
# build/tools/tlrun and gpu-check/ (prepare.sh). Writes $OUT/bench.txt and
# the raw logs. About 4 minutes on an H100/H200.
set -uo pipefail
cd "$(dirname "$0")/../.."
results=${OUT:-/tmp}
[ -n "${GPU_ENV_DONE:-}" ] || source tools/gpu/env.sh
run=$(mktemp -d)
steps=${TLC_BENCH_STEPS:-10}
for model in 124m 1.1b; do
  tokens=$(cat "gpu-check/bench-$model.tokens")  # B*T of the compiled step
  limit=$([ "$model" = 124m ] && echo 150 || echo 240)
  timeout "$limit" build/tools/tlrun train "gpu-check/bench-$model.tlx" --device cuda --data "gpu-check/bench-data-$model" \
    --out "$run/$model" --set "steps=$steps,batch_tokens=$tokens,warmup_steps=2,log_every=1,val_every=0,checkpoint_every=0,final_checkpoint=false" \
    > "$results/bench-tlc-$model.txt" 2>&1 || echo "tlrun train on $model failed (exit $?): see bench-tlc-$model.txt"
  cp "$run/$model/metrics.jsonl" "$results/bench-tlc-$model.jsonl" 2>/dev/null
done
# The anchor, eager only (torch.compile's warm-up alone takes ~100 s per model).
rm -f "$results/baseline.jsonl"
OUT="$results" timeout 240 python3 gpu-check/anchor_eager.py gpu-check/torch_baseline.py \
  > "$results/bench-torch.txt" 2>&1 || echo "the PyTorch anchor failed (exit $?): see bench-torch.txt"
python3 tools/gpu/bench_table.py "$results" gpu-check/torch_baseline_recorded.jsonl | tee "$results/bench.txt"
rm -rf "$run"
