#!/usr/bin/env bash
# Prepares the GPU check on this (CPU) machine: builds tlrun, compiles the
# tiny TinyLlama step in f32 and bf16 (CPU and CUDA kernels in each .tlx),
# writes random weights and tokens, and records the CPU runtime's loss and
# gradients as the reference. Everything lands in gpu-check/ (git-ignored),
# which the device call carries with build/tools/tlrun.
set -euo pipefail
cd "$(dirname "$0")/../.."
tools/build.sh tlc tlrun tl-comm-check
out=gpu-check
rm -rf "$out" && mkdir -p "$out"
# Small enough that weights and both reference gradients stay well under the
# 64 MiB a device call may carry.
overrides="layers=2,vocab=2048,micro_batch=2"
for dtype in f32 bf16; do
  build/tools/tlc emit tinyllama --preset tiny --set "$overrides" --dtype "$dtype" -o "$out/tiny-$dtype.mlir"
  build/tools/tlc compile "$out/tiny-$dtype.mlir" -o "$out/tiny-$dtype.tlx" --target all > "$out/compile-$dtype.txt"
done
build/tools/tlc info "$out/tiny-f32.mlir" --json > "$out/info.json"
/usr/bin/python3 - "$out" <<'PY'
import json, os, sys
import numpy as np
sys.path.insert(0, "tests/parity")
from tlio import write_safetensors, write_shard
out = sys.argv[1]
info = json.load(open(os.path.join(out, "info.json")))
rng = np.random.default_rng(20261128)
weights = {}
for p in info["parameters"]:
    shape = p["shape"]
    if p["name"].endswith("norm.weight"):
        weights[p["name"]] = (1 + 0.2 * rng.standard_normal(shape)).astype(np.float32)
    else:
        weights[p["name"]] = (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)
write_safetensors(os.path.join(out, "weights.safetensors"), weights)
c = info["config"]
write_shard(os.path.join(out, "tokens.bin"), rng.integers(0, c["vocab"], size=2 * c["micro_batch"] * c["seq"] + 1))
PY
for dtype in f32 bf16; do
  build/tools/tlrun eval "$out/tiny-$dtype.tlx" --device cpu --weights "$out/weights.safetensors" \
    --tokens "$out/tokens.bin" --json --dump-grads "$out/cpu-$dtype.safetensors" > "$out/cpu-$dtype.json"
done
# The data-parallel trainer's reference (dist-train-check.sh): 2 MPI ranks on the CPU.
/usr/bin/python3 - "$out" <<'PY'
import json, os, sys
import numpy as np
sys.path.insert(0, "tests/train")
from trainlib import markov_table, markov_tokens, write_shard
out = sys.argv[1]
c = json.load(open(os.path.join(out, "info.json")))["config"]
os.makedirs(os.path.join(out, "dist-data"), exist_ok=True)
rng = np.random.default_rng(7)
table = markov_table(rng, c["vocab"])
write_shard(os.path.join(out, "dist-data", "syn_train_000.bin"), markov_tokens(rng, table, 40 * c["micro_batch"] * c["seq"]))
open(os.path.join(out, "dist-sets.txt"), "w").write(
    f"steps=6,batch_tokens={4 * c['micro_batch'] * c['seq']},warmup_steps=2,lr=1e-3,min_lr=1e-4,log_every=1,bucket_mb=0.5")
PY
mpirun --allow-run-as-root --oversubscribe -np 2 build/tools/tlrun train "$out/tiny-f32.tlx" --data "$out/dist-data" \
  --out "$out/dist-ref" --set "$(cat "$out/dist-sets.txt")" > "$out/dist-ref.txt"
rm -rf "$out/dist-ref/checkpoints"
# The benchmark (bench.sh): the anchor's two models in bf16 for CUDA, random
# tokens for 20 steps of each, and the anchor script with its recorded figures.
for preset in 124m 1.1b; do
  build/tools/tlc emit tinyllama --preset "$preset" --dtype bf16 -o "$out/bench-$preset.mlir"
  build/tools/tlc compile "$out/bench-$preset.mlir" -o "$out/bench-$preset.tlx" --target cuda > "$out/compile-bench-$preset.txt"
  build/tools/tlc info "$out/bench-$preset.mlir" --json > "$out/bench-$preset.json"
done
/usr/bin/python3 - "$out" <<'PY'
import json, os, sys
import numpy as np
sys.path.insert(0, "tests/parity")
from tlio import write_shard
out = sys.argv[1]
rng = np.random.default_rng(1)
for preset in ["124m", "1.1b"]:
    c = json.load(open(os.path.join(out, f"bench-{preset}.json")))["config"]
    tokens = c["micro_batch"] * c["seq"]
    open(os.path.join(out, f"bench-{preset}.tokens"), "w").write(str(tokens))
    os.makedirs(os.path.join(out, f"bench-data-{preset}"), exist_ok=True)
    write_shard(os.path.join(out, f"bench-data-{preset}", "rand_train_000.bin"),
                rng.integers(0, c["vocab"], size=21 * tokens + 1))
PY
anchors=${TLC_ANCHORS:-../shared/anchors}
cp "$anchors/torch_baseline.py" "$out/"
cat "$anchors"/torch_baseline_*.jsonl > "$out/torch_baseline_recorded.jsonl"
cp tools/gpu/anchor_eager.py "$out/"
# The Hugging Face check (hf_check.py there: transformers is not installed
# here): a tiny model trained on a prepared corpus and exported, with tlrun
# eval's loss on the validation shard and spm_encode's ids of a sample text.
hf="$out/hf" && mkdir -p "$hf"
/usr/bin/python3 - "$hf/corpus.jsonl" <<'PY'
import json, sys
import numpy as np
rng = np.random.default_rng(12)
words = ["".join(rng.choice(list("abcdefghijklmn"), size=rng.integers(2, 7))) for _ in range(60)]
with open(sys.argv[1], "w") as f:
    for _ in range(700):
        f.write(json.dumps({"text": " ".join(rng.choice(words, size=rng.integers(4, 20)))}) + "\n")
PY
build/tools/tlrun prepare --input "$hf/corpus.jsonl" --format jsonl --out "$hf/data" --train-tokenizer 300 \
  --val-fraction 0.1 --quiet
build/tools/tlc emit tinyllama --preset tiny -o "$hf/m.mlir" \
  --set layers=2,dim=64,heads=4,kv_heads=2,ffn=96,vocab=320,seq=16,micro_batch=2,norm_eps=1e-6,rope_theta=5000
build/tools/tlc compile "$hf/m.mlir" -o "$hf/m.tlx" --target cpu > /dev/null
build/tools/tlrun train "$hf/m.tlx" --data "$hf/data" --out "$hf/run" \
  --set steps=40,batch_tokens=64,warmup_steps=2,lr=2e-2,min_lr=1e-3,val_every=0 > /dev/null
build/tools/tlrun export "$hf/run" --hf "$hf/export" > /dev/null
cp "$hf/data/val_000000.bin" "$hf/val.bin"
text="abc defg hij klmn"
/usr/bin/python3 - "$hf" "$text" \
  "$(build/tools/tlrun eval "$hf/m.tlx" --weights "$hf/export/model.safetensors" --tokens "$hf/val.bin" --json)" \
  "$(echo "$text" | spm_encode --model="$hf/export/tokenizer.model" --output_format=id)" <<'PY'
import json, os, sys
hf, text, ours, ids = sys.argv[1:5]
json.dump({"loss": json.loads(ours)["loss"], "micro_batch": 2, "seq": 16, "text": text,
           "spm_ids": [int(x) for x in ids.split()]}, open(os.path.join(hf, "expected.json"), "w"))
PY
rm -rf "$hf/data" "$hf/run" "$hf/corpus.jsonl" "$hf/m.mlir" "$hf/m.tlx"
# tlrun's Debian libraries the GPU machine may lack (env.sh puts them on its path).
mkdir -p "$out/lib"
ldd build/tools/tlrun | awk '/libsentencepiece/ {print $3}' | xargs -I{} cp -L {} "$out/lib/"
cp tools/gpu/compare.py "$out/"
cp build/bin/tl-comm-check "$out/"  # the NCCL communicator check (nccl-check.sh)
echo "prepared $out/: $(ls "$out" | wc -l) files"
