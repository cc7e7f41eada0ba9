"""Shared pieces of the `tlrun train` tests: a tiny compiled model, shards,
running tlrun, reading run directories, and the drivers' checks and main."""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "parity"))
from tlio import read_safetensors, read_shard, write_safetensors, write_shard  # noqa: E402,F401

TINY = "layers=2,dim=64,heads=4,kv_heads=2,ffn=96,vocab=64,seq=16,micro_batch=2"


def run(cmd, **kw):
    result = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if result.returncode != 0:
        sys.exit(f"command failed ({result.returncode}): {' '.join(cmd)}\n{result.stdout}\n{result.stderr}")
    return result.stdout


def merge_sets(*lists):
    """One --set list from several, later keys replacing earlier ones (tlrun refuses a
    key given twice)."""
    merged = {}
    for items in lists:
        for item in filter(None, items.split(",")):
            key, value = item.split("=", 1)
            merged[key] = value
    return ",".join(f"{k}={v}" for k, v in merged.items())


def prepare_fortunes(tlrun, out, vocab, files=("goedel", "pets")):
    """`tlrun prepare` on Debian's fortune files with a trained `vocab`-piece
    tokenizer (10% validation) into `out`; exits naming the failure."""
    run([tlrun, "prepare", "--input", *[f"/usr/share/games/fortunes/{f}" for f in files], "--format", "fortune",
         "--train-tokenizer", str(vocab), "--val-fraction", "0.1", "--out", out, "--quiet"])
    return out


def compile_model(tlc, workdir, overrides=TINY, name="model"):
    """Emits and compiles a tiny TinyLlama; returns (artifact path, info json)."""
    mlir = os.path.join(workdir, name + ".mlir")
    tlx = os.path.join(workdir, name + ".tlx")
    run([tlc, "emit", "tinyllama", "--preset", "tiny", "--set", overrides, "-o", mlir])
    run([tlc, "compile", mlir, "-o", tlx, "--target", "cpu"])
    info = json.loads(run([tlc, "info", mlir, "--json"]))
    return tlx, info


def markov_table(rng, vocab, successors=2):
    """Each token's `successors` distinct next tokens. The first successors form one
    random cycle through the whole vocabulary, so the chain is irreducible: a row with
    a repeated successor would be an absorbing state (a corpus of one token repeated,
    learnt to loss 0 while the validation split is not), and a closed subset of tokens
    would let the train and validation splits see different tokens."""
    cycle = rng.permutation(vocab)
    table = np.empty((vocab, successors), dtype=np.int64)
    for i in range(vocab):
        table[cycle[i], 0] = cycle[(i + 1) % vocab]
    for token in range(vocab):
        others = np.setdiff1d(np.arange(vocab), [table[token, 0]])
        table[token, 1:] = rng.choice(others, size=successors - 1, replace=False)
    return table


def markov_tokens(rng, table, count):
    """A learnable corpus: each token is followed by one of the `successors`
    tokens of its row of `table`, so the best loss is about ln(successors)."""
    vocab, successors = table.shape
    out = np.empty(count, dtype=np.int64)
    out[0] = rng.integers(0, vocab)
    choice = rng.integers(0, successors, size=count)
    for i in range(1, count):
        out[i] = table[out[i - 1], choice[i]]
    return out


def metrics(run_dir):
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def latest(run_dir):
    with open(os.path.join(run_dir, "checkpoints", "latest")) as f:
        return os.path.join(run_dir, "checkpoints", f.read().strip())


def checkpoint_weights(ckpt):
    """A checkpoint's f32 master weights by Hugging Face name, from model.safetensors or, sharded
    (checkpoint_weights=sharded), from the range files state.json lists under "weights"."""
    with open(os.path.join(ckpt, "state.json")) as f:
        state = json.load(f)
    if "weights" not in state:
        return read_safetensors(os.path.join(ckpt, "model.safetensors"))
    layout = state["layout"]
    flat = np.zeros(layout["flat_elements"], dtype=np.float32)
    for part in state["weights"]:
        flat[part["begin"]:part["end"]] = read_safetensors(os.path.join(ckpt, part["file"]))["master"]
    return {t["name"]: flat[t["offset"]:t["offset"] + t["numel"]].reshape(t["shape"]) for t in layout["tensors"]}


def flip_byte(path, back=5):
    """Flips bits of the byte `back` bytes before the end of the file (its data, not its header)."""
    with open(path, "r+b") as f:
        f.seek(-back, os.SEEK_END)
        byte = f.read(1)
        f.seek(-back, os.SEEK_END)
        f.write(bytes([byte[0] ^ 0x21]))


def file_damages(truncate_to=64):
    """(name, damage(path), what every verifying reader says about the path): a flipped byte, a
    truncation and a missing file."""
    return [("flipped", flip_byte, "checksum mismatch"),
            ("truncated", lambda path: os.truncate(path, truncate_to), f"has {truncate_to} bytes"),
            ("missing", os.remove, "missing: the checkpoint is incomplete")]


def check_damaged_file_refused(tlrun, run_dir, work, name, readers, truncate_to=64):
    """For each of file_damages: a copy of `run_dir` with the latest checkpoint's file `name`
    damaged; every reader of `readers(copy, out, target)` ((what, call) pairs, each call giving a
    finished process) and `tlrun checkpoints --verify` must fail with exit 1 naming the file, and
    leave the copy, `out` and `target` (paths they would write) as they were."""
    for i, (kind, damage, why) in enumerate(file_damages(truncate_to)):
        copy = os.path.join(work, f"damaged-{kind}-{name}")
        shutil.copytree(run_dir, copy)
        path = os.path.join(latest(copy), name)
        damage(path)
        out, target = copy + "-out", copy + "-target"
        before = tree_state(copy)
        for what, call in readers(copy, out, target) + [
                ("checkpoints --verify", lambda: subprocess.run([tlrun, "checkpoints", copy, "--verify"],
                                                                capture_output=True, text=True))]:
            r = call()
            said = r.stdout if what == "checkpoints --verify" else r.stderr
            check(r.returncode == 1 and f"{path}: {why}" in said,
                  f"{kind} {name}: {what} refuses naming it ({said.strip()[-200:]})")
        check(tree_state(copy) == before and not os.path.exists(out) and not os.path.exists(target),
              f"{kind} {name}: nothing written or changed")


def tree_state(*roots):
    """Every file under the roots with its bytes: to prove nothing changed."""
    state = {}
    for root in roots:
        if not os.path.exists(root):
            state[root] = None
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            for n in filenames:
                p = os.path.join(dirpath, n)
                if n == ".lock":
                    continue
                with open(p, "rb") as f:
                    state[p] = f.read()
            for d in dirnames:
                state[os.path.join(dirpath, d) + "/"] = b""
    return state


def mean_microbatch_loss(tokens, B, T, loss):
    """The mean of `loss(inputs, targets)` (both [B, T] torch tensors) over the full micro-batches
    of `tokens`, in tlrun eval's order; returns (mean, micro-batches)."""
    import torch
    n = (len(tokens) - 1) // (B * T)
    losses = []
    with torch.no_grad():
        for s in range(n):
            span = torch.tensor(tokens[s * B * T: (s + 1) * B * T + 1])
            losses.append(loss(span[:-1].view(B, T), span[1:].view(B, T)))
    return sum(losses) / n, n


def transformers_loss(export_dir, tokens, B, T):
    """transformers' LlamaForCausalLM, loaded from a `tlrun export` directory in f64, on `tokens`
    as mean_microbatch_loss cuts them. Raises ImportError without transformers."""
    import torch
    from transformers import LlamaForCausalLM
    model = LlamaForCausalLM.from_pretrained(export_dir, torch_dtype=torch.float64).eval()

    def loss(inputs, targets):
        logits = model(input_ids=inputs).logits
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1)).item()
    return mean_microbatch_loss(tokens, B, T, loss)


FAILURES = []
SKIP_STATUS = 77  # ctest's SKIP_RETURN_CODE for the Python drivers


class Skip(Exception):
    """A group that cannot run here (a missing optional module, no GPU)."""


def check(cond, what):
    print(f"  {'ok  ' if cond else 'FAIL'} {what}", flush=True)
    if not cond:
        FAILURES.append(what)


def run_groups(doc, groups, setup, add_arguments=None):
    """The drivers' main: --tlc, --tlrun, --only GROUP (repeatable), --seed N (fresh and printed
    otherwise), then `setup(args, work, rng)` in a temporary directory, whose result (a tuple)
    follows (work, rng) in every group's arguments. Returns the exit status: 1 on a failed
    check, SKIP_STATUS when every group run raised Skip (so ctest says "skipped", not
    "passed"), 0 otherwise."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tlc", required=True)
    parser.add_argument("--tlrun", required=True)
    parser.add_argument("--only", choices=sorted(groups), action="append")
    parser.add_argument("--seed", type=int, help="reproduce a run (its seed is printed)")
    if add_arguments:
        add_arguments(parser)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    print(f"seed {seed}")
    rng = np.random.default_rng(seed)
    random.seed(seed)
    ran, skipped = 0, []
    with tempfile.TemporaryDirectory() as work:
        context = setup(args, work, rng)
        for name, group in groups.items():
            if args.only and name not in args.only:
                continue
            print(f"{name}:", flush=True)
            ran += 1
            try:
                group(work, rng, *context)
            except Skip as why:
                print(f"  skip {why}", flush=True)
                skipped.append(name)
    if FAILURES:
        print(f"{len(FAILURES)} check(s) failed (seed {seed}):\n  " + "\n  ".join(FAILURES))
        return 1
    if ran and len(skipped) == ran:
        print("skipped: " + ", ".join(skipped))
        return SKIP_STATUS
    print("all checks passed" + (f" (skipped: {', '.join(skipped)})" if skipped else ""))
    return 0
