#!/usr/bin/env python3
"""tlc's CPU runtime against eager PyTorch on the same training work.

Until `tlrun train` exists this times the forward + backward of the compiled
training step (`tlrun eval`: loss and every gradient, no optimizer) against
the same forward + backward in PyTorch (tests/parity/llama_reference.py, f32,
Debian's torch on OpenBLAS), with the same thread count, in one run. tlc and
PyTorch repetitions are interleaved so a busy machine slows both alike; the
ratio of the medians is the figure. tlrun's time per micro-batch is the wall
time of a run over 1 + K micro-batches minus that of a run over one (process
start, weight loading and loading the cached kernels cancel).
"""
import argparse
import json
import os
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


def run(cmd, env=None):
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"command failed ({result.returncode}): {' '.join(cmd)}\n{result.stderr}")
    return result


def timed(cmd, env):
    start = time.perf_counter()
    run(cmd, env)
    return time.perf_counter() - start


def bench(args, name, overrides, workdir, rng):
    mlir, tlx = os.path.join(workdir, name + ".mlir"), os.path.join(workdir, name + ".tlx")
    run([args.tlc, "emit", "tinyllama", "--preset", "tiny", "--set", overrides, "--fused", "-o", mlir])
    run([args.tlc, "compile", mlir, "-o", tlx, "--target", "cpu"])
    info = json.loads(run([args.tlc, "info", mlir, "--json"]).stdout)
    cfg = info["config"]
    B, T, V = cfg["micro_batch"], cfg["seq"], cfg["vocab"]
    weights = {p["name"]: (rng.standard_normal(p["shape"]) / np.sqrt(p["shape"][-1])).astype(np.float32)
               for p in info["parameters"]}
    wpath = os.path.join(workdir, name + ".safetensors")
    write_safetensors(wpath, weights)
    K = args.steps
    tokens = rng.integers(0, V, size=(K + 1) * B * T + 1)
    one, many = os.path.join(workdir, name + ".1.bin"), os.path.join(workdir, name + ".k.bin")
    write_shard(one, tokens[: B * T + 1])
    write_shard(many, tokens)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    evalCmd = [args.tlrun, "eval", tlx, "--weights", wpath, "--device", "cpu", "--tokens"]
    run(evalCmd + [one], env)  # JIT-compiles and caches the kernels

    w = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
    batches = [torch.tensor(tokens[s * B * T: (s + 1) * B * T + 1], dtype=torch.int64) for s in range(K + 1)]

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
    tlc_tps, torch_tps = B * T / statistics.median(tlc_times), B * T / statistics.median(torch_times)
    ratio = tlc_tps / torch_tps
    target = args.target_tiny if name == "tiny" else args.target_wide
    print(f"{name:5s} fwd+bwd B={B} T={T} ({overrides}): tlc {tlc_tps:.0f} tok/s, torch {torch_tps:.0f} tok/s, "
          f"ratio {ratio:.2f}x (target {target:.1f}x: {'met' if ratio >= target else 'missed'})", flush=True)
    if args.profile:
        prof = subprocess.run(evalCmd + [many], capture_output=True, text=True,
                              env=dict(env, TLC_PROFILE="1"))
        print(prof.stderr, end="")
    return ratio >= target


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tlc", default=os.path.join(ROOT, "build", "tools", "tlc"))
    parser.add_argument("--tlrun", default=os.path.join(ROOT, "build", "tools", "tlrun"))
    parser.add_argument("--models", default="tiny,wide", help="comma-separated: " + ", ".join(MODELS))
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--steps", type=int, default=4, help="micro-batches per timed run (K)")
    parser.add_argument("--profile", action="store_true", help="print TLC_PROFILE's per-kernel table")
    parser.add_argument("--target-tiny", type=float, default=1.2)
    parser.add_argument("--target-wide", type=float, default=1.0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"forward + backward (tlrun eval; no optimizer), f32, {args.threads} threads, "
          f"torch {torch.__version__}, {args.reps} interleaved repetitions of {args.steps} micro-batches")
    rng = np.random.default_rng(int.from_bytes(os.urandom(4), "little"))
    ok = True
    with tempfile.TemporaryDirectory() as workdir:
        for name in args.models.split(","):
            if name not in MODELS:
                sys.exit(f"unknown model '{name}' (known: {', '.join(MODELS)})")
            ok &= bench(args, name, MODELS[name], workdir, rng)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
