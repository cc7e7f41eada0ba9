#!/usr/bin/env python3
"""Training with recomputation (tlc compile --recompute, --memory-budget) on the CPU device.

  exact   a 3-layer f32 model compiled with --recompute none, auto, full and under a
          --memory-budget trains the same trajectory bitwise (every loss, the final weights)
          while planning a smaller arena; in bf16 the first step's loss is equal and its gradient
          norm within 1e-3
  resume  a recompute=none run's checkpoint resumed with the recompute=full artifact goes on
          as the straight run does, bitwise: recomputation changes no parameter layout

Fresh random data every run (the seed is printed). Run with /usr/bin/python3.
"""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trainlib import (check, latest, markov_table, markov_tokens, merge_sets, metrics, run,  # noqa: E402
                      run_groups, write_shard)

MODEL = "layers=3,dim=64,heads=4,kv_heads=2,ffn=96,vocab=64,seq=32,micro_batch=2"
BASE = "batch_tokens=128,warmup_steps=2,lr=1e-2,min_lr=1e-3,log_every=1,val_every=0,checkpoint_every=0,seed=5"


def compile_variant(work, name, dtype, *flags):
    mlir = os.path.join(work, f"model-{dtype}.mlir")
    if not os.path.exists(mlir):
        run([ARGS.tlc, "emit", "tinyllama", "--preset", "tiny", "--set", MODEL, "--dtype", dtype, "-o", mlir])
    tlx = os.path.join(work, f"{name}-{dtype}.tlx")
    # The variants must not inherit a TLC_RECOMPUTE the suite runs under.
    env = {k: v for k, v in os.environ.items() if k != "TLC_RECOMPUTE"}
    out = subprocess.run([ARGS.tlc, "compile", mlir, "-o", tlx, "--target", "cpu", *flags],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"tlc compile {' '.join(flags)} failed:\n{out.stderr}")
    arena = int(re.search(r"arena: ([0-9,]+) bytes", out.stdout).group(1).replace(",", ""))
    return tlx, arena


def train(tlx, data, out, steps, *extra, sets=""):
    run([ARGS.tlrun, "train", tlx, "--data", data, "--out", out, "--set", merge_sets(BASE, sets),
         "--steps", str(steps), *extra])
    return [m["loss"] for m in metrics(out)]


def grad_norms(run_dir):
    return [m["grad_norm"] for m in metrics(run_dir)]


def weights(run_dir):
    with open(os.path.join(latest(run_dir), "model.safetensors"), "rb") as f:
        return f.read()


def test_exact(work, rng, data):
    variants = {"none": ["--recompute", "none"], "auto": ["--recompute", "auto"], "full": ["--recompute", "full"]}
    arenas, f32_losses = {}, None
    for dtype in ("f32", "bf16"):
        runs = {}
        for name, flags in variants.items():
            tlx, arenas[(name, dtype)] = compile_variant(work, name, dtype, *flags)
            out = os.path.join(work, f"run-{name}-{dtype}")
            runs[name] = (train(tlx, data, out, 6), out)
        base, base_dir = runs["none"]
        f32_losses = f32_losses or base
        for name in ("auto", "full"):
            losses, out = runs[name]
            if dtype == "f32":
                check(losses == base and weights(out) == weights(base_dir),
                      f"f32 {name}: losses and final weights equal recompute=none's, bitwise "
                      f"({losses[-1]!r} vs {base[-1]!r})")
            else:
                # A recomputed elementwise op that tl-fuse-elementwise fuses into its
                # reader is not rounded to bf16 in between, as its stored copy was, so
                # the gradients differ by bf16 rounding, and training amplifies that a
                # little (seen: losses within 1.9e-3 by step 6; the loss itself is f32).
                norms, base_norms = grad_norms(out), grad_norms(base_dir)
                first = abs(norms[0] - base_norms[0]) / base_norms[0]
                worst = max(abs(a - b) / abs(b) for a, b in zip(losses, base))
                check(losses[0] == base[0] and first < 1e-3 and worst < 2e-2,
                      f"bf16 {name}: the first loss equal, its gradient norm within 1e-3 "
                      f"({first:.1e}), every loss within 2e-2 of recompute=none's ({worst:.1e})")
            check(arenas[(name, dtype)] < arenas[("none", dtype)],
                  f"{dtype} {name}: arena {arenas[(name, dtype)]:,} < {arenas[('none', dtype)]:,} bytes")
    check(arenas[("full", "f32")] < arenas[("auto", "f32")], "full plans less than auto")
    # A budget between auto's and full's device totals: met, and still the same trajectory.
    totals = {}
    for name in ("auto", "full"):
        out = subprocess.run([ARGS.tlc, "compile", os.path.join(work, "model-f32.mlir"), "-o",
                              os.path.join(work, "probe.tlx"), "--target", "cpu", "--recompute", name],
                             capture_output=True, text=True, check=True).stdout
        totals[name] = float(re.search(r"= ([0-9.]+) MB \(", out).group(1))
    budget = f"{(totals['auto'] + totals['full']) / 2:.2f}MB"
    tlx, arena = compile_variant(work, "budget", "f32", "--memory-budget", budget)
    out = os.path.join(work, "run-budget")
    losses = train(tlx, data, out, 6)
    check(arenas[("full", "f32")] <= arena < arenas[("auto", "f32")],
          f"--memory-budget {budget}: arena {arena:,} between full's and auto's")
    check(losses == f32_losses and weights(out) == weights(os.path.join(work, "run-none-f32")),
          "--memory-budget: the same trajectory, bitwise")


def test_resume(work, rng, data):
    none_tlx, _ = compile_variant(work, "none", "f32", "--recompute", "none")
    full_tlx, _ = compile_variant(work, "full", "f32", "--recompute", "full")
    sets = "steps=8,checkpoint_every=4"
    straight, resumed = os.path.join(work, "resume-straight"), os.path.join(work, "resume-full")
    losses = train(none_tlx, data, straight, 8, sets=sets)
    after = train(full_tlx, data, resumed, 8, "--resume=" + straight + ":4", sets=sets)
    check(after == losses[4:] and weights(resumed) == weights(straight),
          "steps 5-8 resumed with recompute=full from recompute=none's checkpoint 4 equal the straight "
          "run, bitwise (losses, final weights)")


def setup(args, work, rng):
    global ARGS
    ARGS = args
    data = os.path.join(work, "data")
    os.makedirs(data)
    table = markov_table(rng, 64)
    write_shard(os.path.join(data, "m_train_000.bin"), markov_tokens(rng, table, 20000))
    write_shard(os.path.join(data, "m_val_000.bin"), markov_tokens(rng, table, 2000))
    return (data,)


if __name__ == "__main__":
    sys.exit(run_groups(__doc__, {"exact": test_exact, "resume": test_resume}, setup))
