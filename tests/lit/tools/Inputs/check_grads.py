"""Reads the gradients `tlc eval --dump-grads` and `tlrun eval --dump-grads`
wrote and checks them: one tensor per parameter of `tlc info --json`, named
like it with its shape, finite and not all zero, and the evaluator's and the
CPU runtime's agree (relative L2 error per tensor). Prints one line per file."""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "parity"))
from tlio import read_safetensors  # noqa: E402

info = json.load(open(sys.argv[1]))
files = sys.argv[2:]
params = {p["name"]: tuple(p["shape"]) for p in info["parameters"]}
dumps = []
for path in files:
    grads = read_safetensors(path)
    if set(grads) != set(params):
        sys.exit(f"{path}: tensors {sorted(set(grads) ^ set(params))} differ from the parameters")
    for name, g in grads.items():
        if tuple(g.shape) != params[name]:
            sys.exit(f"{path}: {name} has shape {g.shape}, the parameter {params[name]}")
        if not np.all(np.isfinite(g)) or not np.any(g):
            sys.exit(f"{path}: {name} is not finite or all zero")
    dumps.append(grads)
    print(f"{os.path.basename(path)}: {len(grads)} gradients, shapes match, finite, nonzero")
for other in dumps[1:]:
    worst = max(np.linalg.norm(other[n].astype(np.float64) - dumps[0][n]) /
                np.linalg.norm(dumps[0][n].astype(np.float64)) for n in params)
    if worst > 1e-4:
        sys.exit(f"gradients differ: worst relative L2 error {worst:.3g}")
    print(f"agree: worst relative L2 error {'< 1e-4' if worst < 1e-4 else worst}")
