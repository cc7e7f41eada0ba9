#!/usr/bin/env python3
"""Per-rank peak resident memory (RSS) of `tlrun train` on 1, 2 and 4 CPU ranks (MPI) at
zero=0..3, against the formula (docs/distributed.md, "What each ZeRO mode costs").

One artifact (default: the 124m preset at micro-batch 1 x 32, f32, so a step is quick), two
optimizer steps of 4 micro-batches each (every rank count shares them equally), no checkpoint.
Each rank runs under /usr/bin/time, which reports its own peak RSS. Beside each measurement:

  state   the training state the trainer logs for that rank (`rank R memory: ...`: parameters,
          gradients, master + moments as allocated; shard::stateBytes)
  rest    measured minus state: the arena (the planned train_step arena plus eval_loss's), the
          JIT-compiled kernels, MPI and the process itself
  ideal   the issue's target for zero=3: (parameters + gradients + optimizer) / N plus two
          layers' gathered parameters (activations, the embedding and head groups, the process
          and MPI not counted)
  step    from metrics.jsonl's last step: step_s (wall seconds of the step), comm_s (the main thread's time in collectives, what is
          not hidden), comm_thread_s (the communication thread's busy time, zero=2/3) and
          comm_hidden (the fraction of it that fell while the step computed)

One rank ignores `zero` (nothing to shard), so it is measured once.

  tools/bench/zero_memory.py [--preset 124m] [--set micro_batch=1,seq=32] [--ranks 1,2,4]
      [--zero 0,1,2,3] [--tlc build/tools/tlc] [--tlrun build/tools/tlrun] [--mpiexec mpirun]
      [--train-set overlap=false]
"""
import argparse
import json
import os
import re
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import run_ranks, write_random_shards  # noqa: E402

MIB = 2**20


def run(a, ranks, args, scratch):
    """Peak RSS in bytes of each rank, and the trainer's logged state bytes per rank."""
    rss, text = run_ranks([a.tlrun, "train"] + args, ranks, a.mpiexec, scratch)
    state = {int(k): int(p) + int(g) + int(o) for k, p, g, o in
             re.findall(r"^rank (\d+) memory: params (\d+) B, grads (\d+) B, optimizer state (\d+) B", text, re.M)}
    return rss, [state[k] for k in sorted(state)]


def step_figures(run_dir, batch_tokens):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        last = [json.loads(line) for line in f if line.strip()][-1]
    step = f"{batch_tokens / last['tokens_per_s']:6.2f}"
    if "comm_s" not in last:
        return step
    return (f"{step} {last['comm_s']:6.3f} {last.get('comm_thread_s', float('nan')):8.3f} "
            f"{last.get('comm_hidden', float('nan')):6.2f}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="124m")
    p.add_argument("--set", default="micro_batch=1,seq=32", help="tlc emit overrides")
    p.add_argument("--ranks", default="1,2,4")
    p.add_argument("--zero", default="0,1,2,3")
    p.add_argument("--tlc", default="build/tools/tlc")
    p.add_argument("--tlrun", default="build/tools/tlrun")
    p.add_argument("--mpiexec", default="mpirun")
    p.add_argument("--train-set", default="", help="more tlrun train --set keys (e.g. overlap=false)")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as w:
        mlir, tlx = os.path.join(w, "m.mlir"), os.path.join(w, "m.tlx")
        subprocess.run([a.tlc, "emit", "tinyllama", "--preset", a.preset, "--set", a.set, "-o", mlir], check=True)
        subprocess.run([a.tlc, "compile", mlir, "-o", tlx, "--target", "cpu"], check=True, capture_output=True)
        info = json.loads(subprocess.run([a.tlc, "info", mlir, "--json"], check=True, capture_output=True).stdout)
        cfg = info["config"]
        params = sum(int(np.prod(t["shape"])) for t in info["parameters"])
        layer = sum(int(np.prod(t["shape"])) for t in info["parameters"] if ".layers.0." in t["name"])
        data = os.path.join(w, "data")
        write_random_shards(data, cfg["vocab"])
        os.environ["TLC_CACHE_DIR"] = os.path.join(w, "cache")
        micro = cfg["micro_batch"] * cfg["seq"]
        sets = f"batch_tokens={4 * micro},val_every=0,log_every=1,warmup_steps=1,final_checkpoint=false,steps=2"
        base = [tlx, "--data", data, "--set", sets + ("," + a.train_set if a.train_set else "")]
        run(a, 1, base + ["--out", os.path.join(w, "warm")], os.path.join(w, "rss-warm"))  # fills the kernel cache
        print(f"{a.preset} ({params / 1e6:.1f}M parameters, f32, micro-batch {cfg['micro_batch']}x{cfg['seq']}, "
              f"4 micro-batches per step), per-rank peak RSS in MiB")
        print(f"{'ranks':>5} {'zero':>4}  {'measured per rank':<28} {'state':>7} {'rest':>6} {'ideal':>7}  "
              f"step_s comm_s thread_s hidden")
        for ranks in [int(x) for x in a.ranks.split(",")]:
            for zero in [int(x) for x in a.zero.split(",")] if ranks > 1 else [0]:
                out = os.path.join(w, f"r{ranks}z{zero}")
                rss, state = run(a, ranks, base + ["--out", out, "--set", f"zero={zero}"], out + ".rss")
                if not state:  # one rank logs no per-rank line: everything, f32
                    state = [20 * params]
                ideal = 20 * params / ranks + (2 * 4 * layer if zero == 3 else 0)
                label = "0-3" if ranks == 1 else str(zero)
                measured = " ".join(f"{x / MIB:.0f}" for x in rss)
                print(f"{ranks:>5} {label:>4}  {measured:<28} {max(state) / MIB:7.0f} "
                      f"{(max(rss) - max(state)) / MIB:6.0f} {ideal / MIB if zero == 3 else float('nan'):7.0f}  "
                      f"{step_figures(out, 4 * micro)}", flush=True)


if __name__ == "__main__":
    main()
