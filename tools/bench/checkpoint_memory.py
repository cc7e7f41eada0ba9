#!/usr/bin/env python3
"""Peak resident memory (RSS) of `tlrun train` saving and loading a checkpoint, CPU device.

Three runs of one artifact (default: the 124m preset at micro-batch 1 x 64 tokens, so a step is
quick): one step without a checkpoint (the baseline: the training state itself, on the CPU in
host memory), one step that writes its checkpoint, and a resume from it (one more step, no
checkpoint). The save and load overheads are their peaks minus the baseline's; beside them, the
host copy that a whole-buffer save or load needs (master weights + both moments, f32).

With --ranks N (MPI) every figure is per rank, the largest rank's beside the smallest's; --zero
and --weights (checkpoint_weights: full, where rank 0 writes all master weights, gathered chunk
by chunk, or sharded, a range file per rank) choose what is saved. A zero=3 rank holds and
reads only its shard. Ranks are timed with GNU time (/usr/bin/time) and told apart by Open MPI's
OMPI_COMM_WORLD_RANK (Debian's mpirun).

  tools/bench/checkpoint_memory.py [--preset 124m] [--ranks 1] [--zero 1] [--weights full]
      [--tlc build/tools/tlc] [--tlrun build/tools/tlrun] [--mpiexec mpirun]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import run_ranks, write_random_shards  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="124m")
    p.add_argument("--set", default="micro_batch=1,seq=64", help="tlc emit overrides")
    p.add_argument("--tlc", default="build/tools/tlc")
    p.add_argument("--tlrun", default="build/tools/tlrun")
    p.add_argument("--ranks", type=int, default=1)
    p.add_argument("--zero", type=int, default=1)
    p.add_argument("--weights", choices=("full", "sharded"), default="full")
    p.add_argument("--mpiexec", default="mpirun")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as w:
        mlir, tlx = os.path.join(w, "m.mlir"), os.path.join(w, "m.tlx")
        subprocess.run([a.tlc, "emit", "tinyllama", "--preset", a.preset, "--set", a.set, "-o", mlir], check=True)
        subprocess.run([a.tlc, "compile", mlir, "-o", tlx, "--target", "cpu"], check=True, capture_output=True)
        info = json.loads(subprocess.run([a.tlc, "info", mlir, "--json"], check=True, capture_output=True).stdout)
        cfg = info["config"]
        params = sum(int(np.prod(t["shape"])) for t in info["parameters"])
        data = os.path.join(w, "data")
        write_random_shards(data, cfg["vocab"])
        micro = cfg["micro_batch"] * cfg["seq"]
        sets = (f"batch_tokens={micro * a.ranks},val_every=0,log_every=1,warmup_steps=1,zero={a.zero},"
                f"checkpoint_weights={a.weights}")
        train = [a.tlrun, "train", tlx, "--data", data, "--set", sets]
        os.environ["TLC_CACHE_DIR"] = os.path.join(w, "cache")

        def peak(*args):
            rss, _ = run_ranks(train + list(args), a.ranks, a.mpiexec, os.path.join(w, "rss"))
            return [x / 2**20 for x in rss]

        peak("--out", os.path.join(w, "warm"), "--steps", "1", "--set", "final_checkpoint=false")
        base = peak("--out", os.path.join(w, "base"), "--steps", "1", "--set", "final_checkpoint=false")
        save = peak("--out", os.path.join(w, "run"), "--steps", "1")
        load = peak("--out", os.path.join(w, "run"), "--resume", "--steps", "2", "--set", "final_checkpoint=false")
    copy = params * 4 * 3 / 2**20

    def figures(rss):
        return f"{max(rss):8.0f}" + (f" (smallest rank {min(rss):.0f})" if a.ranks > 1 else "")

    print(f"{a.preset} ({params / 1e6:.1f}M parameters), {a.tlrun}, {a.ranks} rank(s), zero={a.zero}, "
          f"checkpoint_weights={a.weights}; peak RSS in MiB{', largest rank' if a.ranks > 1 else ''}:")
    print(f"  one step, no checkpoint (baseline)   {figures(base)}")
    print(f"  one step + save                      {figures(save)}   save overhead {max(save) - max(base):7.0f}")
    print(f"  resume + one step                    {figures(load)}   load overhead {max(load) - max(base):7.0f}")
    print(f"  a whole host copy (master, m, v)     {copy:8.0f}")


if __name__ == "__main__":
    main()
