#!/usr/bin/env bash
# The main job on the built-in default: set up, build, then train a TinyLlama
# (`tiny` preset, 4.9M parameters with a 4096-piece vocabulary) on Debian's
# fortunes for a few minutes on the CPU, and write a checkpoint, the loss
# plot, a Hugging Face export and a generated sample.
#
# Everything goes to out/ (OUT=dir to change it). A second run reuses what is
# there: the prepared data, the artifact, and the run (a finished run is kept
# and only re-exported and sampled; with a larger STEPS=N it is resumed and
# trained on to step N).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
tools/build.sh tlc tlrun
OUT=${OUT:-out}
STEPS=${STEPS:-120}
TLC=build/tools/tlc
TLRUN=build/tools/tlrun
mkdir -p "$OUT"

echo "== 1/6 data: Debian's fortunes, a 4096-piece SentencePiece BPE (Llama-2 settings)"
if [ ! -f "$OUT/data/manifest.json" ]; then
  $TLRUN prepare --input /usr/share/games/fortunes --format fortune --train-tokenizer 4096 \
    --out "$OUT/data" --quiet
else
  echo "reusing $OUT/data"
fi

echo "== 2/6 model: tlc emit + tlc compile (training step, validation loss, decode step)"
if [ ! -f "$OUT/tinyllama.tlx" ]; then
  $TLC emit tinyllama --preset tiny --set vocab=4096 -o "$OUT/tinyllama.mlir"
  $TLC compile "$OUT/tinyllama.mlir" -o "$OUT/tinyllama.tlx" --target cpu
else
  echo "reusing $OUT/tinyllama.tlx"
fi

echo "== 3/6 training on the CPU ($STEPS steps of 8192 tokens)"
SETTINGS="steps=$STEPS,batch_tokens=8192,lr=3e-3,min_lr=3e-4,warmup_steps=10,log_every=5"
SETTINGS="$SETTINGS,val_every=20,val_batches=2,checkpoint_every=40,keep_checkpoints=2"
if [ -e "$OUT/run/checkpoints/latest" ] && [ "$(cat "$OUT/run/checkpoints/latest")" -ge "$STEPS" ] 2>/dev/null; then
  echo "reusing the finished run $OUT/run ($(cat "$OUT/run/checkpoints/latest") steps)"
elif [ -e "$OUT/run/checkpoints/latest" ]; then
  $TLRUN train "$OUT/tinyllama.tlx" --data "$OUT/data" --out "$OUT/run" --set "$SETTINGS" --resume
else
  $TLRUN train "$OUT/tinyllama.tlx" --data "$OUT/data" --out "$OUT/run" --set "$SETTINGS"
fi

echo "== 4/6 loss plot"
$TLRUN plot "$OUT/run"

echo "== 5/6 Hugging Face export"
$TLRUN export "$OUT/run" --hf "$OUT/hf" --force

echo "== 6/6 a sample (temperature 0.8, top-p 0.9)"
$TLRUN generate "$OUT/run" --prompt "A fool and his money" --max-tokens 60 \
  --temperature 0.8 --top-p 0.9 --seed 7 | tee "$OUT/sample.txt"

cat <<EOF

done:
  data (shards, tokenizer, manifest)   $OUT/data/
  compiled model                       $OUT/tinyllama.tlx
  run: metrics, config, checkpoints    $OUT/run/   (latest: $OUT/run/checkpoints/latest;
                                       list them: tlrun checkpoints $OUT/run)
  loss plot (open in a browser)        $OUT/run/plot.svg
  Hugging Face export                  $OUT/hf/
  generated sample                     $OUT/sample.txt
EOF
