"""What the memory benchmarks share: random llm.c token shards, and running `tlrun` on one rank
or under Open MPI with each rank timed by GNU time (/usr/bin/time, its own peak RSS)."""
import os
import subprocess
import sys

import numpy as np


def write_random_shards(dir, vocab, tokens=(("train", 20000), ("val", 4000))):
    """One llm.c shard per (split, count) of uniformly random ids below `vocab`."""
    os.makedirs(dir)
    rng = np.random.default_rng(0)
    for name, n in tokens:
        ids = rng.integers(0, vocab, n).astype(np.uint16)
        header = np.zeros(256, np.int32)
        header[:3] = (20240520, 1, n)
        with open(os.path.join(dir, f"r_{name}_000.bin"), "wb") as f:
            f.write(header.tobytes() + ids.tobytes())


def run_ranks(cmd, ranks, mpiexec, scratch):
    """Runs cmd on `ranks` ranks (Open MPI's mpiexec above one); exits with its output on failure.
    Returns each rank's peak RSS in bytes and the job's stdout + stderr."""
    # One file per rank, told apart by OMPI_COMM_WORLD_RANK (the ranks' stderr may interleave).
    timed = ["bash", "-c", f'exec /usr/bin/time -o {scratch}.${{OMPI_COMM_WORLD_RANK:-0}} -f %M "$@"', "_"]
    launch = [] if ranks == 1 else [mpiexec, "--allow-run-as-root", "--oversubscribe", "-np", str(ranks)]
    r = subprocess.run(launch + timed + cmd, capture_output=True, text=True)
    text = r.stdout + r.stderr
    if r.returncode != 0:
        sys.exit(f"failed ({r.returncode}): {' '.join(cmd)}\n{text[-3000:]}")
    return [int(open(f"{scratch}.{k}").read().split()[-1]) * 1024 for k in range(ranks)], text
