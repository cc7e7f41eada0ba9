#!/usr/bin/env python3
"""tlc's CPU runtime against eager PyTorch on the same training work.

Default (--mode train): a training step, fwd + bwd + AdamW (+ clipping).
`tlrun train` runs 1 + K optimizer steps of `--accum` micro-batches each
(batch_tokens = accum x B x T; AdamW, grad_clip, warmup + cosine schedule,
shuffle=false, no validation, checkpoint only at the end) from given f32
weights on a random token shard in llm.c's format; PyTorch runs the same steps
on tests/parity/llama_reference.py's model (torch.optim.AdamW with the same
hyperparameters and decay groups, clip_grad_norm_, the same micro-batches,
f32, Debian's torch on OpenBLAS, the same thread count). tlc's steady-state
throughput is the `tokens_per_s` of the last metrics.jsonl entry: logged
after step 1 and after step 1 + K, it covers steps 2..1+K only (process
start, kernel loading, the first step and the final checkpoint are outside
it). PyTorch's is K steps timed after one warm-up step.

--mode fwd-bwd: the forward + backward of `tlrun eval` (loss and every
gradient, no optimizer) against the same in PyTorch; tlrun's time per
micro-batch is the wall time of a run over 1 + K micro-batches minus that of
a run over one.

Either way tlc and PyTorch repetitions are interleaved so a busy machine
slows both alike; the figure is the median of the per-repetition ratios (the
ratio of the medians is printed too).
"""
import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "parity"))
from llama_reference import llama_loss  # noqa: E402
from tlio import write_safetensors, write_shard  # noqa: E402

MODELS = {
    "tiny": "micro_batch=8",
    "wide": "dim=512,layers=8,heads=8,kv_heads=2,ffn=1408,micro_batch=8",
}
# AdamW and schedule of the training mode (both sides).
LR, MIN_LR, WARMUP, CLIP, WD, BETAS, EPS = 4e-4, 4e-5, 1, 1.0, 0.1, (0.9, 0.95), 1e-8


def run(cmd, env=None):
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"command failed ({result.returncode}): {' '.join(cmd)}\n{result.stdout}{result.stderr}")
    return result


def timed(cmd, env):
    start = time.perf_counter()
    run(cmd, env)
    return time.perf_counter() - start


def schedule(s, steps):
    """tlrun train's learning rate of 0-indexed step s (docs/training.md)."""
    if s < WARMUP:
        return LR * (s + 1) / WARMUP
    return MIN_LR + 0.5 * (1 + math.cos(math.pi * (s - WARMUP) / (steps - WARMUP))) * (LR - MIN_LR)


def setup(args, name, overrides, workdir, rng, micro_batches):
    """Compiles the model, writes f32 weights and a shard of micro_batches + 1 spans; returns the pieces."""
    mlir, tlx = os.path.join(workdir, name + ".mlir"), os.path.join(workdir, name + ".tlx")
    run([args.tlc, "emit", "tinyllama", "--preset", "tiny", "--set", overrides, "--fused", "-o", mlir])
    run([args.tlc, "compile", mlir, "-o", tlx, "--target", "cpu"])
    cfg = json.loads(run([args.tlc, "info", mlir, "--json"]).stdout)
    weights = {}
    for p in cfg["parameters"]:
        shape = p["shape"]
        if len(shape) == 1:  # norm gains near 1, as trained models have
            weights[p["name"]] = (1.0 + 0.2 * rng.standard_normal(shape)).astype(np.float32)
        else:
            weights[p["name"]] = (rng.standard_normal(shape) / np.sqrt(shape[-1])).astype(np.float32)
    wpath = os.path.join(workdir, name + ".safetensors")
    write_safetensors(wpath, weights)
    cfg = cfg["config"]
    B, T = cfg["micro_batch"], cfg["seq"]
    tokens = rng.integers(0, cfg["vocab"], size=micro_batches * B * T + 1)
    batches = [torch.tensor(tokens[s * B * T: (s + 1) * B * T + 1], dtype=torch.int64) for s in range(micro_batches)]
    return tlx, cfg, weights, wpath, tokens, batches


def report(args, name, mode, B, T, overrides, tlc_tps, torch_tps):
    """tlc_tps, torch_tps: tokens/s per repetition. The target is judged on the median of the
    per-repetition ratios (each pair ran back to back, so a load that changes between repetitions
    cancels); the ratio of the medians is printed too."""
    ratio = statistics.median(a / b for a, b in zip(tlc_tps, torch_tps))
    tlc_med, torch_med = statistics.median(tlc_tps), statistics.median(torch_tps)
    target = args.target_tiny if name == "tiny" else args.target_wide
    print(f"{name:5s} {mode} B={B} T={T} ({overrides}): tlc {tlc_med:.0f} tok/s, torch {torch_med:.0f} tok/s "
          f"(medians: {tlc_med / torch_med:.2f}x), ratio {ratio:.2f}x (median per repetition; "
          f"target {target:.1f}x: {'met' if ratio >= target else 'missed'})", flush=True)
    return ratio >= target


def bench_train(args, name, overrides, workdir, rng):
    K, A = args.steps, args.accum
    tlx, cfg, weights, wpath, tokens, batches = setup(args, name, overrides, workdir, rng, (1 + K) * A)
    B, T = cfg["micro_batch"], cfg["seq"]
    batch_tokens = A * B * T
    data = os.path.join(workdir, name + "-data")
    os.makedirs(data)
    write_shard(os.path.join(data, "rand_train_000.bin"), tokens)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    settings = (f"batch_tokens={batch_tokens},lr={LR},min_lr={MIN_LR},warmup_steps={WARMUP},grad_clip={CLIP},"
                f"weight_decay={WD},beta1={BETAS[0]},beta2={BETAS[1]},eps={EPS},shuffle=false,"
                "log_every=1000000,val_every=0,checkpoint_every=0")

    def train_cmd(steps, out):
        shutil.rmtree(out, ignore_errors=True)
        return [args.tlrun, "train", tlx, "--data", data, "--out", out, "--device", "cpu", "--init-from", wpath,
                "--set", f"steps={steps}," + settings]

    run_dir = os.path.join(workdir, name + "-run")
    run(train_cmd(1, run_dir), env)  # JIT-compiles and caches the kernels

    w = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    opt = torch.optim.AdamW([{"params": [t for t in w.values() if t.dim() >= 2], "weight_decay": WD},
                             {"params": [t for t in w.values() if t.dim() < 2], "weight_decay": 0.0}],
                            lr=LR, betas=BETAS, eps=EPS)

    def torch_step(s):
        for group in opt.param_groups:
            group["lr"] = schedule(s, 1 + K)
        opt.zero_grad(set_to_none=True)
        for k in range(A):
            span = batches[s * A + k]
            (llama_loss(w, cfg, span[:-1].view(B, T), span[1:].view(B, T)) / A).backward()
        torch.nn.utils.clip_grad_norm_(list(w.values()), CLIP)
        opt.step()

    torch_step(0)  # warm-up (and AdamW's state allocation)
    tlc_tps, torch_tps = [], []
    for rep in range(args.reps):
        run(train_cmd(1 + K, run_dir), env)
        with open(os.path.join(run_dir, "metrics.jsonl")) as f:
            entries = [json.loads(line) for line in f if line.strip()]
        if [e["step"] for e in entries] != [1, 1 + K]:
            sys.exit(f"unexpected metrics.jsonl steps {[e['step'] for e in entries]} in {run_dir}")
        tlc_tps.append(entries[-1]["tokens_per_s"])
        start = time.perf_counter()
        for s in range(1, 1 + K):
            torch_step(s)
        torch_tps.append(K * batch_tokens / (time.perf_counter() - start))
        print(f"  {name} rep {rep + 1}: tlc {tlc_tps[-1]:8.0f} tok/s   torch {torch_tps[-1]:8.0f} tok/s   "
              f"(tlc's grad norm at step {1 + K}: {entries[-1]['grad_norm']:.3g}, clipped above {CLIP})", flush=True)
    ok = report(args, name, f"train step ({A} x micro-batch)", B, T, overrides, tlc_tps, torch_tps)
    if args.profile:
        prof = subprocess.run(train_cmd(1 + K, run_dir), capture_output=True, text=True,
                              env=dict(env, TLC_PROFILE="1"))
        print(prof.stderr, end="")
    return ok


def bench_fwd_bwd(args, name, overrides, workdir, rng):
    K = args.steps
    tlx, cfg, weights, wpath, tokens, batches = setup(args, name, overrides, workdir, rng, K + 1)
    B, T = cfg["micro_batch"], cfg["seq"]
    one, many = os.path.join(workdir, name + ".1.bin"), os.path.join(workdir, name + ".k.bin")
    write_shard(one, tokens[: B * T + 1])
    write_shard(many, tokens)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    evalCmd = [args.tlrun, "eval", tlx, "--weights", wpath, "--device", "cpu", "--tokens"]
    run(evalCmd + [one], env)  # JIT-compiles and caches the kernels

    w = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}

    def torch_step(span):
        for t in w.values():
            t.grad = None
        llama_loss(w, cfg, span[:-1].view(B, T), span[1:].view(B, T)).backward()

    torch_step(batches[0])  # warm-up
    tlc_times, torch_times = [], []
    for rep in range(args.reps):
        t1 = timed(evalCmd + [one], env)
        start = time.perf_counter()
        for s in range(K):
            torch_step(batches[s])
        torch_times.append((time.perf_counter() - start) / K)
        tk = timed(evalCmd + [many], env)
        tlc_times.append((tk - t1) / K)
        print(f"  {name} rep {rep + 1}: tlc {B * T / tlc_times[-1]:8.0f} tok/s   "
              f"torch {B * T / torch_times[-1]:8.0f} tok/s", flush=True)
    ok = report(args, name, "fwd+bwd", B, T, overrides,
                [B * T / t for t in tlc_times], [B * T / t for t in torch_times])
    if args.profile:
        prof = subprocess.run(evalCmd + [many], capture_output=True, text=True,
                              env=dict(env, TLC_PROFILE="1"))
        print(prof.stderr, end="")
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tlc", default=os.path.join(ROOT, "build", "tools", "tlc"))
    parser.add_argument("--tlrun", default=os.path.join(ROOT, "build", "tools", "tlrun"))
    parser.add_argument("--mode", choices=["train", "fwd-bwd"], default="train",
                        help="train: fwd + bwd + AdamW (+ clipping) with tlrun train (default); "
                             "fwd-bwd: tlrun eval's forward + backward, no optimizer")
    parser.add_argument("--models", default="tiny,wide", help="comma-separated: " + ", ".join(MODELS))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4,
                        help="timed optimizer steps (train) or micro-batches (fwd-bwd) per repetition (K)")
    parser.add_argument("--accum", type=int, default=2, help="micro-batches per optimizer step (train, >= 1)")
    parser.add_argument("--profile", action="store_true", help="print TLC_PROFILE's per-kernel table")
    parser.add_argument("--target-tiny", type=float, default=1.2)
    parser.add_argument("--target-wide", type=float, default=1.0)
    args = parser.parse_args()
    if args.steps < 1 or args.accum < 1 or args.reps < 1:
        sys.exit("--steps, --accum and --reps must be at least 1")
    torch.set_num_threads(args.threads)
    if args.mode == "train":
        what = (f"training step: fwd + bwd + AdamW (+ clipping) (tlrun train; {args.accum} micro-batches per step), "
                f"{args.reps} interleaved repetitions of {args.steps} steps")
    else:
        what = (f"forward + backward (tlrun eval; no optimizer), "
                f"{args.reps} interleaved repetitions of {args.steps} micro-batches")
    print(f"{what}, f32, {args.threads} threads, torch {torch.__version__}")
    rng = np.random.default_rng(int.from_bytes(os.urandom(4), "little"))
    bench = bench_train if args.mode == "train" else bench_fwd_bwd
    ok = True
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.models.split(","):
            if name not in MODELS:
                sys.exit(f"unknown model '{name}' (known: {', '.join(MODELS)})")
            ok &= bench(args, name, MODELS[name], workdir, rng)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
