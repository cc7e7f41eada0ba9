#!/usr/bin/env python3
"""bf16 activations against the f32 path: the tiny preset trained both ways on the CPU.

The bf16 step keeps its saved activations in bf16 and its statistics (rstd, log-sum-exp) in f32,
with f32 gradients, f32 master weights and AdamW moments; the f32 step keeps everything in f32.
Both train from the same seed on the same data (Debian's fortune files, a SentencePiece
tokenizer trained on them); the script prints the planned train_step arena of each, the
training loss every few steps, the validation losses and the largest relative gap.

  tools/bench/bf16_activations.py [--steps 120] [--recompute none] [--tlc ...] [--tlrun ...]
"""
import argparse
import glob
import json
import os
import re
import subprocess
import sys
import tempfile


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr[-2000:]}")
    return r.stdout


def metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--vocab", type=int, default=1024, help="tokenizer and model vocabulary")
    p.add_argument("--recompute", default="none", help="tlc compile --recompute for both")
    p.add_argument("--tlc", default="build/tools/tlc")
    p.add_argument("--tlrun", default="build/tools/tlrun")
    a = p.parse_args()
    fortunes = sorted(f for f in glob.glob("/usr/share/games/fortunes/*") if "." not in os.path.basename(f))
    with tempfile.TemporaryDirectory() as w:
        data = os.path.join(w, "data")
        run([a.tlrun, "prepare", "--input", *fortunes, "--format", "fortune", "--train-tokenizer", str(a.vocab),
             "--val-fraction", "0.05", "--out", data, "--quiet"])
        sets = (f"batch_tokens=2048,warmup_steps=10,lr=3e-3,min_lr=3e-4,log_every=1,"
                f"val_every={max(1, a.steps // 4)},checkpoint_every=0,seed=1")
        results = {}
        for dtype in ("f32", "bf16"):
            mlir, tlx = os.path.join(w, f"{dtype}.mlir"), os.path.join(w, f"{dtype}.tlx")
            run([a.tlc, "emit", "tinyllama", "--preset", "tiny", "--set", f"vocab={a.vocab}", "--dtype", dtype,
                 "-o", mlir])
            out = run([a.tlc, "compile", mlir, "-o", tlx, "--target", "cpu", "--recompute", a.recompute])
            arena = int(re.search(r"entry point train_step: .*? arena ([0-9,]+) bytes", out).group(1)
                        .replace(",", ""))
            run_dir = os.path.join(w, f"run-{dtype}")
            run([a.tlrun, "train", tlx, "--data", data, "--out", run_dir, "--set", sets,
                 "--steps", str(a.steps)])
            results[dtype] = (arena, metrics(run_dir))
    (arena32, m32), (arena16, m16) = results["f32"], results["bf16"]
    print(f"tiny preset (vocab {a.vocab}), 4 x 256 micro-batches, 2,048 tokens a step, {a.steps} steps, "
          f"--recompute {a.recompute}")
    print(f"train_step arena: f32 {arena32:,} bytes, bf16 {arena16:,} bytes ({arena16 / arena32:.2f}x)")
    print(f"{'step':>5} {'f32 loss':>10} {'bf16 loss':>10} {'rel. gap':>9}")
    worst = 0.0
    for e32, e16 in zip(m32, m16):
        gap = abs(e16["loss"] - e32["loss"]) / abs(e32["loss"])
        worst = max(worst, gap)
        if e32["step"] % max(1, a.steps // 12) == 0 or e32["step"] == 1:
            print(f"{e32['step']:>5} {e32['loss']:>10.4f} {e16['loss']:>10.4f} {gap:>9.2e}")
    print(f"largest relative gap of the training loss: {worst:.2e}")
    for e32, e16 in zip(m32, m16):
        if "val_loss" in e32 and "val_loss" in e16:
            print(f"validation loss at step {e32['step']}: f32 {e32['val_loss']:.4f}, bf16 {e16['val_loss']:.4f} "
                  f"({(e16['val_loss'] - e32['val_loss']) / e32['val_loss']:+.2%})")
    tps32 = sum(e.get("tokens_per_s", 0) for e in m32[1:]) / max(1, len(m32) - 1)
    tps16 = sum(e.get("tokens_per_s", 0) for e in m16[1:]) / max(1, len(m16) - 1)
    if tps32 and tps16:
        print(f"mean tokens/s on this CPU: f32 {tps32:,.0f}, bf16 {tps16:,.0f}")


if __name__ == "__main__":
    main()
