"""Writes files for tlc-eval-errors.test: weights for a model described by
`tlc info --json` (optionally with one tensor of the wrong shape or missing)
and a short token shard."""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "..", "parity"))
from tlio import write_safetensors, write_shard  # noqa: E402

info = json.load(open(sys.argv[1]))
out = sys.argv[2]
rng = np.random.default_rng(0)
weights = {p["name"]: rng.standard_normal(p["shape"]).astype(np.float32) for p in info["parameters"]}
write_safetensors(out + ".ok.safetensors", weights)
bad = dict(weights)
bad["model.norm.weight"] = np.ones(3, dtype=np.float32)
write_safetensors(out + ".shape.safetensors", bad)
missing = dict(weights)
del missing["lm_head.weight"]
write_safetensors(out + ".missing.safetensors", missing)
cfg = info["config"]
span = cfg["micro_batch"] * cfg["seq"]
write_shard(out + ".short.bin", rng.integers(0, cfg["vocab"], size=span))  # one token short
write_shard(out + ".ids.bin", np.full(span + 1, cfg["vocab"] + 5))         # ids beyond the vocab
write_shard(out + ".ok.bin", rng.integers(0, cfg["vocab"], size=span + 1))
ints = dict(weights)
ints["model.norm.weight"] = np.ones(ints["model.norm.weight"].shape, dtype=np.int32)
write_safetensors(out + ".i32.safetensors", ints)                      # an integer parameter
last = rng.integers(0, cfg["vocab"], size=span + 1)
last[-1] = cfg["vocab"]                                                # only the final target is out of range
write_shard(out + ".last.bin", last)
