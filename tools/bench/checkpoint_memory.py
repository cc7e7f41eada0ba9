#!/usr/bin/env python3
"""Peak resident memory (RSS) of `tlrun train` saving and loading a checkpoint, CPU device.

Three runs of one artifact (default: the 124m preset at micro-batch 1 x 64 tokens, so a step is
quick): one step without a checkpoint (the baseline: the training state itself, on the CPU in
host memory), one step that writes its checkpoint, and a resume from it (one more step, no
checkpoint). The save and load overheads are their peaks minus the baseline's; beside them, the
host copy that a whole-buffer save or load needs (master weights + both moments, f32).

  tools/bench/checkpoint_memory.py [--preset 124m] [--tlc build/tools/tlc] [--tlrun build/tools/tlrun]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile

import numpy as np


def peak_rss_mib(cmd):
    """Runs cmd alone in a fresh child and returns its peak RSS in MiB."""
    wrapper = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:], capture_output=True);"
               "sys.stderr.write(r.stderr.decode()[-2000:]) if r.returncode else None;"
               "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(r.returncode)")
    r = subprocess.run([sys.executable, "-c", wrapper, *cmd], capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr}")
    return int(r.stdout.split()[-1]) / 1024


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="124m")
    p.add_argument("--set", default="micro_batch=1,seq=64", help="tlc emit overrides")
    p.add_argument("--tlc", default="build/tools/tlc")
    p.add_argument("--tlrun", default="build/tools/tlrun")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as w:
        mlir, tlx = os.path.join(w, "m.mlir"), os.path.join(w, "m.tlx")
        subprocess.run([a.tlc, "emit", "tinyllama", "--preset", a.preset, "--set", a.set, "-o", mlir], check=True)
        subprocess.run([a.tlc, "compile", mlir, "-o", tlx, "--target", "cpu"], check=True, capture_output=True)
        info = json.loads(subprocess.run([a.tlc, "info", mlir, "--json"], check=True, capture_output=True).stdout)
        cfg = info["config"]
        params = sum(int(np.prod(t["shape"])) for t in info["parameters"])
        data = os.path.join(w, "data")
        os.makedirs(data)
        rng = np.random.default_rng(0)
        for name, n in (("train", 20000), ("val", 4000)):
            tokens = rng.integers(0, cfg["vocab"], n).astype(np.uint16)
            header = np.zeros(256, np.int32)
            header[:3] = (20240520, 1, n)
            with open(os.path.join(data, f"r_{name}_000.bin"), "wb") as f:
                f.write(header.tobytes() + tokens.tobytes())
        micro = cfg["micro_batch"] * cfg["seq"]
        sets = f"batch_tokens={micro},val_every=0,log_every=1,warmup_steps=1"
        train = [a.tlrun, "train", tlx, "--data", data, "--set", sets]
        env_cache = os.path.join(w, "cache")
        os.environ["TLC_CACHE_DIR"] = env_cache
        peak_rss_mib(train + ["--out", os.path.join(w, "warm"), "--steps", "1", "--set", "final_checkpoint=false"])
        base = peak_rss_mib(train + ["--out", os.path.join(w, "base"), "--steps", "1", "--set", "final_checkpoint=false"])
        save = peak_rss_mib(train + ["--out", os.path.join(w, "run"), "--steps", "1"])
        load = peak_rss_mib(train + ["--out", os.path.join(w, "run"), "--resume", "--steps", "2", "--set",
                                     "final_checkpoint=false"])
    copy = params * 4 * 3 / 2**20
    print(f"{a.preset} ({params / 1e6:.1f}M parameters), {a.tlrun}, peak RSS in MiB:")
    print(f"  one step, no checkpoint (baseline)   {base:8.0f}")
    print(f"  one step + save                      {save:8.0f}   save overhead {save - base:7.0f}")
    print(f"  resume + one step                    {load:8.0f}   load overhead {load - base:7.0f}")
    print(f"  a whole host copy (master, m, v)     {copy:8.0f}")


if __name__ == "__main__":
    main()
