"""tlrun generate end to end.

greedy:  the compiled decode step (KV cache) decodes greedily token for token
         like an independent PyTorch Llama (tests/parity/llama_reference.py)
         recomputing the full forward pass of every prefix, in f64, until the
         context is full; its logits at each step agree too.
run:     a prepared corpus and a short training run: generate from the run
         directory and from a checkpoint directory (run.json names the
         artifact and data), streamed text, the same seed gives the same text,
         EOS/max tokens/context stops.
errors:  a prompt longer than the context, an artifact without a decode step,
         a weights file without --model, a missing source, bad options.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "parity"))
from llama_reference import llama_logits  # noqa: E402
from tlio import write_safetensors  # noqa: E402

FORTUNES = "/usr/share/games/fortunes"
VOCAB = 400
MODEL = f"layers=2,dim=64,heads=4,kv_heads=2,ffn=96,vocab={VOCAB},seq=32,micro_batch=2"


def run(cmd, expect=0):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != expect:
        sys.exit(f"expected exit {expect}, got {r.returncode}: {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r


def setup(args, work):
    """Data with a 400-piece tokenizer and a compiled model; returns (tlx, data dir, info)."""
    data = os.path.join(work, "data")
    run([args.tlrun, "prepare", "--input", f"{FORTUNES}/goedel", f"{FORTUNES}/pets", f"{FORTUNES}/magic",
         "--format", "fortune", "--train-tokenizer", str(VOCAB), "--val-fraction", "0.1", "--out", data,
         "--quiet"])
    mlir, tlx = os.path.join(work, "m.mlir"), os.path.join(work, "m.tlx")
    run([args.tlc, "emit", "tinyllama", "--preset", "tiny", "--set", MODEL, "-o", mlir])
    out = run([args.tlc, "compile", mlir, "-o", tlx, "--target", "cpu"]).stdout
    assert "decode_step" in out, out
    info = json.loads(run([args.tlc, "info", mlir, "--json"]).stdout)
    return tlx, data, info


def generate(args, source, *extra, expect=0):
    return run([args.tlrun, "generate", source, *extra], expect=expect)


def test_greedy(args, work, tlx, data, info):
    rng = np.random.default_rng(5)
    weights = {}
    for p in info["parameters"]:
        shape = tuple(p["shape"])
        weights[p["name"]] = (1.0 if len(shape) == 1 else 0.0) + 0.3 * rng.standard_normal(shape)
    wpath = os.path.join(work, "random.safetensors")
    write_safetensors(wpath, {k: v.astype(np.float32) for k, v in weights.items()})
    cfg = info["config"]
    w = {k: torch.tensor(v.astype(np.float32).astype(np.float64)) for k, v in weights.items()}
    context = cfg["seq"]
    eos = json.load(open(os.path.join(data, "manifest.json")))["eos_id"]
    for prompt in ["The cat", "Some of the good things in life are"]:
        r = generate(args, wpath, "--model", tlx, "--tokenizer", os.path.join(data, "tokenizer.model"),
                     "--prompt", prompt, "--temperature", "0", "--max-tokens", "100", "--json")
        got = json.loads(r.stdout)
        ids = list(got["prompt_ids"])
        want, margins = [], []
        stop = "max_tokens"
        while True:
            with torch.no_grad():
                logits = llama_logits(w, cfg, torch.tensor([ids]))[0, -1]
            top2 = torch.topk(logits, 2).values
            margins.append(float(top2[0] - top2[1]))
            nxt = int(torch.argmax(logits))
            if nxt == eos:
                stop = "eos"
                break
            want.append(nxt)
            ids.append(nxt)
            if len(ids) > context:
                stop = "context"
                break
        assert got["ids"] == want, f"{prompt!r}: decode step {got['ids']}\nfull forward {want}"
        assert got["stop"] == stop, (got["stop"], stop)
        print(f"greedy {prompt!r}: {len(want)} tokens equal the recomputed-prefix decoding "
              f"(stop: {stop}; smallest top-2 logit margin {min(margins):.2e})")


def test_run(args, work, tlx, data):
    run_dir = os.path.join(work, "run")
    run([args.tlrun, "train", tlx, "--data", data, "--out", run_dir,
         "--set", "steps=30,batch_tokens=128,warmup_steps=3,lr=1e-2,min_lr=1e-3,val_every=0,log_every=10"])
    recorded = json.load(open(os.path.join(run_dir, "run.json")))
    assert recorded["model"] == os.path.abspath(tlx) and recorded["data"] == os.path.abspath(data), recorded
    common = ["--prompt", "Q: What", "--max-tokens", "12", "--seed", "7", "--temperature", "0.9", "--top-k", "40",
              "--top-p", "0.95"]
    a = json.loads(generate(args, run_dir, *common, "--json").stdout)
    b = json.loads(generate(args, run_dir, *common, "--json").stdout)
    assert a["ids"] == b["ids"] and a["text"] == b["text"], (a, b)
    with open(os.path.join(run_dir, "checkpoints", "latest")) as f:
        checkpoint = os.path.join(run_dir, "checkpoints", f.read().strip())
    c = json.loads(generate(args, checkpoint + "/", *common, "--json").stdout)
    assert c["ids"] == a["ids"], (c, a)
    seeds = {tuple(json.loads(generate(args, run_dir, "--prompt", "Q: What", "--max-tokens", "12", "--seed", str(s),
                                       "--temperature", "1.5", "--json").stdout)["ids"]) for s in range(4)}
    assert len(seeds) > 1, "four seeds gave the same text"
    assert a["stop"] in ("eos", "max_tokens") and len(a["ids"]) <= 12
    if a["stop"] == "max_tokens":
        assert len(a["ids"]) == 12
    text = generate(args, run_dir, *common)
    assert text.stdout == "Q: What" + a["text"] + "\n", (text.stdout, a["text"])
    assert "tokens generated" in text.stderr and "tokens/s" in text.stderr, text.stderr
    zero = json.loads(generate(args, run_dir, "--prompt", "x", "--max-tokens", "0", "--json").stdout)
    assert zero["ids"] == [] and zero["stop"] == "max_tokens"
    print(f"run: {a['text']!r} ({a['stop']}); same seed same text; checkpoint directory works")
    return run_dir


def test_errors(args, work, tlx, data, run_dir):
    long_prompt = " ".join(["word"] * 40)
    r = generate(args, run_dir, "--prompt", long_prompt, expect=2)
    assert "tokens (BOS included) but the model's context is 32 tokens" in r.stderr, r.stderr
    # A training step compiles without a decode step.
    mlir, old = os.path.join(work, "step.mlir"), os.path.join(work, "old.tlx")
    run([args.tlc, "emit", "tinyllama", "--preset", "tiny", "--set", MODEL, "--train-step", "-o", mlir])
    run([args.tlc, "compile", mlir, "-o", old, "--target", "cpu"])
    r = generate(args, run_dir, "--model", old, "--prompt", "hi", expect=1)
    assert "has no decode step" in r.stderr and "recompile the model with tlc compile" in r.stderr, r.stderr
    ckpt = os.path.join(run_dir, "checkpoints")
    weights = [os.path.join(ckpt, d, "model.safetensors") for d in os.listdir(ckpt) if d.isdigit()][0]
    # A checkpoint's weights file finds the run's run.json; a bare copy needs --model.
    generate(args, weights, "--prompt", "hi", "--max-tokens", "2")
    bare = os.path.join(work, "bare.safetensors")
    shutil.copy(weights, bare)
    r = generate(args, bare, "--prompt", "hi", expect=1)  # no run.json is a bad input, as in export
    assert "give it with --model" in r.stderr, r.stderr
    r = generate(args, run_dir, "--model", os.path.join(work, "m.mlir"), "--prompt", "hi", expect=1)
    assert "given a text file, expected a .tlx artifact" in r.stderr, r.stderr
    # A flipped byte in the weights: refused like tlrun export and --resume do.
    corrupt = os.path.join(work, "corrupt-run")
    shutil.copytree(run_dir, corrupt)
    with open(os.path.join(corrupt, "checkpoints", "latest")) as f:
        flipped = os.path.join(corrupt, "checkpoints", f.read().strip(), "model.safetensors")
    with open(flipped, "r+b") as f:
        f.seek(-5, 2)
        byte = f.read(1)
        f.seek(-5, 2)
        f.write(bytes([byte[0] ^ 0x10]))
    for source in (corrupt, os.path.dirname(flipped)):
        r = generate(args, source, "--prompt", "hi", expect=1)
        assert "model.safetensors: checksum mismatch" in r.stderr, r.stderr
    with open(os.path.join(corrupt, "checkpoints", "latest"), "w") as f:
        f.write("abc\n")
    r = generate(args, corrupt, "--prompt", "hi", expect=1)
    assert "checkpoints/latest: does not name a checkpoint step ('abc')" in r.stderr, r.stderr
    for seed in ("-1", "18446744073709551616", "1e23", "7.5"):
        r = generate(args, run_dir, "--prompt", "hi", "--seed", seed, expect=2)
        assert f"--seed: must be an integer in 0..18446744073709551615, got '{seed}'" in r.stderr, r.stderr
    generate(args, run_dir, "--prompt", "hi", "--max-tokens", "1", "--seed", "18446744073709551615")
    r = generate(args, run_dir, "--prompt", "ab\udcffc", expect=2)  # the byte 0xff (surrogateescape)
    assert "--prompt is not valid UTF-8: byte 0xff at byte offset 2" in r.stderr, r.stderr
    r = generate(args, os.path.join(work, "nowhere"), "--prompt", "hi", expect=1)
    assert "nowhere: does not exist; expected a .safetensors weights file, or a checkpoint reference" in r.stderr, r.stderr
    r = generate(args, run_dir, "--prompt", "hi", "--top-p", "0", expect=2)
    assert "--top-p must be in (0, 1]" in r.stderr, r.stderr
    r = generate(args, run_dir, "--prompt", "hi", "--temperature", "-1", expect=2)
    assert "--temperature" in r.stderr, r.stderr
    r = generate(args, run_dir, expect=2)
    assert "--prompt" in r.stderr, r.stderr
    r = generate(args, run_dir, "--prompt", "hi", "--tokenizer", tlx, expect=1)
    assert "m.tlx: not a SentencePiece model" in r.stderr, r.stderr
    print("errors: long prompt, no decode step, no --model, corrupt checkpoint, missing source, bad options, "
          "bad tokenizer")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--tlc", required=True)
    parser.add_argument("--tlrun", required=True)
    parser.add_argument("--only", choices=["greedy", "run"])
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="tlc-generate-")
    os.environ.setdefault("TLC_CACHE_DIR", os.path.join(work, "cache"))
    try:
        tlx, data, info = setup(args, work)
        if args.only in (None, "greedy"):
            test_greedy(args, work, tlx, data, info)
        if args.only in (None, "run"):
            run_dir = test_run(args, work, tlx, data)
            test_errors(args, work, tlx, data, run_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("ok")


if __name__ == "__main__":
    main()
