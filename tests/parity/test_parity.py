#!/usr/bin/env python3
"""Parity: tlc's emitted TinyLlama, run by the reference evaluator, against an
independent PyTorch Llama (Debian's python3-torch) on random weights and tokens.

Loss: relative error below 1e-10 in f64, below 1e-5 in f32. Gradients of the
training step (tl-autodiff) against torch autograd, per parameter tensor
(||ours - torch|| / ||torch||): below 1e-9 in f64, below 1e-4 in f32. Each is
checked for the plain training step (`--train-step`) and for the output of the
default pipeline with every fusion (`--fused`, "f64-fused"/"f32-fused").
With --tlrun, the fused step is also compiled (`tlc compile --target cpu`)
and run by the runtime's CPU device (`tlrun eval`): its loss and gradients
must match the reference evaluator's f32 ones (relative error below 1e-5) and
PyTorch's f32 ones (loss below 1e-5, gradients below 1e-4).
Run with /usr/bin/python3.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from llama_reference import llama_loss  # noqa: E402
from tlio import read_safetensors, write_safetensors, write_shard  # noqa: E402

# name -> (preset, overrides)
CONFIGS = {
    "tiny": ("tiny", ""),
    "gqa-2layer": ("tiny", "layers=2,dim=64,heads=8,kv_heads=2,ffn=96,vocab=128,seq=32,micro_batch=3"),
    "mha-1layer": ("tiny", "layers=1,dim=48,heads=4,kv_heads=4,ffn=80,vocab=97,seq=12,micro_batch=2,rope_theta=500"),
}
TOLERANCE = {"f64": 1e-10, "f32": 1e-5}
GRAD_TOLERANCE = {"f64": 1e-9, "f32": 1e-4}


def run(cmd):
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"command failed ({result.returncode}): {' '.join(cmd)}\n{result.stderr}")
    return result.stdout


def random_weights(params, rng):
    weights = {}
    for p in params:
        shape = p["shape"]
        if p["name"].endswith("norm.weight"):
            weights[p["name"]] = 1.0 + 0.2 * rng.standard_normal(shape)
        else:  # fan-in scaled, so activations and logits stay O(1)
            weights[p["name"]] = rng.standard_normal(shape) / np.sqrt(shape[-1])
    return weights


def grad_errors(ours, reference):
    return {k: float(np.linalg.norm(ours[k] - reference[k]) / np.linalg.norm(reference[k])) for k in reference}


def report(name, variant, what, errors, tolerance):
    worst = max(errors, key=lambda k: errors[k] if errors[k] == errors[k] else np.inf)
    ok = all(e < tolerance for e in errors.values())
    print(f"{name:12s} {variant:9s}  {what}: worst rel.err {errors[worst]:.2e} ({worst})  "
          f"(< {tolerance:.0e})  {'ok' if ok else 'FAIL'}", flush=True)
    return ok


def check(tlc, tlrun, name, preset, overrides, workdir, seed):
    rng = np.random.default_rng(seed)
    paths = {}
    for dtype in ("f64", "f32"):
        for variant, flag in (("", "--train-step"), ("-fused", "--fused")):
            paths[dtype + variant] = os.path.join(workdir, f"{name}.{dtype}{variant}.mlir")
            cmd = [tlc, "emit", "tinyllama", "--preset", preset, "--dtype", dtype, flag,
                   "-o", paths[dtype + variant]]
            if overrides:
                cmd += ["--set", overrides]
            run(cmd)
    info = json.loads(run([tlc, "info", paths["f64"], "--json"]))
    assert info["outputs"][0]["name"] == "loss"
    assert [g["name"] for g in info["gradients"]] == [p["name"] for p in info["parameters"]]
    cfg = info["config"]
    B, T, V = cfg["micro_batch"], cfg["seq"], cfg["vocab"]

    weights = random_weights(info["parameters"], rng)
    w64 = os.path.join(workdir, f"{name}.w64.safetensors")
    w32 = os.path.join(workdir, f"{name}.w32.safetensors")
    write_safetensors(w64, weights)
    write_safetensors(w32, {k: v.astype(np.float32) for k, v in weights.items()})
    # Two full micro-batches plus a ragged tail that must be ignored.
    tokens = rng.integers(0, V, size=2 * B * T + 1 + T // 2)
    shard = os.path.join(workdir, f"{name}.tokens.bin")
    write_shard(shard, tokens)

    ok = True
    runs = [("f64", w64, torch.float64), ("f32", w32, torch.float32),
            ("f64-fused", w64, torch.float64), ("f32-fused", w32, torch.float32)]
    results = {}
    for variant, wpath, tdtype in runs:
        dtype = variant[:3]
        gpath = os.path.join(workdir, f"{name}.grads.{variant}.safetensors")
        out = json.loads(run([tlc, "eval", paths[variant], "--weights", wpath, "--tokens", shard,
                              "--precision", dtype, "--json", "--dump-grads", gpath]))
        w = {k: torch.tensor(v, dtype=tdtype, requires_grad=True) for k, v in weights.items()}
        losses = []
        for step in range(2):
            span = torch.tensor(tokens[step * B * T: (step + 1) * B * T + 1], dtype=torch.int64)
            loss = llama_loss(w, cfg, span[:-1].view(B, T), span[1:].view(B, T)) / 2
            loss.backward()  # accumulates the gradient of the mean over micro-batches
            losses.append(2 * loss.item())
        expect = sum(losses) / len(losses)
        rel = abs(out["loss"] - expect) / abs(expect)
        passed = out["micro_batches"] == 2 and rel < TOLERANCE[dtype]
        ok &= passed
        results[variant] = (out["loss"], read_safetensors(gpath), w, expect)
        print(f"{name:12s} {variant:9s}  tlc {out['loss']:.15f}  torch {expect:.15f}  "
              f"rel.err {rel:.2e}  (< {TOLERANCE[dtype]:.0e})  {'ok' if passed else 'FAIL'}", flush=True)
        grads = read_safetensors(gpath)
        errors = {}
        for pname, tensor in w.items():
            ref = tensor.grad.double().numpy()
            errors[pname] = float(np.linalg.norm(grads[pname] - ref) / np.linalg.norm(ref))
        worst_name = max(errors, key=lambda k: errors[k] if errors[k] == errors[k] else np.inf)
        worst = errors[worst_name]
        gpassed = set(grads) == set(w) and all(e < GRAD_TOLERANCE[dtype] for e in errors.values())
        ok &= gpassed
        print(f"{name:12s} {variant:9s}  gradients of {len(grads)} tensors: worst rel.err {worst:.2e} "
              f"({worst_name})  (< {GRAD_TOLERANCE[dtype]:.0e})  {'ok' if gpassed else 'FAIL'}", flush=True)
        if variant == "f64":
            # The comparison must be able to fail: a small change to the rotary
            # base or the causal mask moves the loss far beyond the tolerance.
            moved = dict(cfg, rope_theta=cfg["rope_theta"] * 1.01)
            span = torch.tensor(tokens[: B * T + 1], dtype=torch.int64)
            with torch.no_grad():
                detached = {k: v.detach() for k, v in w.items()}
                other = llama_loss(detached, moved, span[:-1].view(B, T), span[1:].view(B, T)).item()
            if abs(other - losses[0]) / abs(losses[0]) < 1e3 * TOLERANCE[dtype]:
                print(f"{name:12s} the loss is insensitive to rope_theta: weak test inputs")
                ok = False
    if tlrun:
        ok &= check_runtime(tlc, tlrun, name, paths["f32-fused"], w32, shard, results, workdir)
    return ok


def check_runtime(tlc, tlrun, name, step_path, weights, shard, results, workdir):
    """The compiled artifact on the CPU device against the evaluator and torch (f32)."""
    artifact = os.path.join(workdir, f"{name}.tlx")
    run([tlc, "compile", step_path, "-o", artifact, "--target", "cpu"])
    gpath = os.path.join(workdir, f"{name}.grads.tlrun.safetensors")
    out = json.loads(run([tlrun, "eval", artifact, "--weights", weights, "--tokens", shard,
                          "--device", "cpu", "--json", "--dump-grads", gpath]))
    grads = read_safetensors(gpath)
    ev_loss, ev_grads, torch_weights, torch_loss = results["f32"]
    ok = True
    rel = abs(out["loss"] - ev_loss) / abs(ev_loss)
    ok &= rel < 1e-5
    print(f"{name:12s} tlrun-cpu  loss {out['loss']:.9f} vs evaluator f32 {ev_loss:.9f}  rel.err {rel:.2e}  "
          f"(< 1e-05)  {'ok' if rel < 1e-5 else 'FAIL'}", flush=True)
    rel = abs(out["loss"] - torch_loss) / abs(torch_loss)
    ok &= rel < 1e-5
    print(f"{name:12s} tlrun-cpu  loss {out['loss']:.9f} vs torch f32 {torch_loss:.9f}  rel.err {rel:.2e}  "
          f"(< 1e-05)  {'ok' if rel < 1e-5 else 'FAIL'}", flush=True)
    ok &= set(grads) == set(ev_grads)
    ok &= report(name, "tlrun-cpu", "gradients vs evaluator f32", grad_errors(grads, ev_grads), 1e-5)
    torch_grads = {k: t.grad.double().numpy() for k, t in torch_weights.items()}
    ok &= report(name, "tlrun-cpu", "gradients vs torch f32", grad_errors(grads, torch_grads), 1e-4)
    return ok


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tlc", required=True)
    parser.add_argument("--tlrun", help="also compile the fused step and run it on the CPU runtime")
    parser.add_argument("--only", choices=sorted(CONFIGS))
    parser.add_argument("--seed", type=int, help="reproduce a run (its seed is printed)")
    args = parser.parse_args()
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    # Fresh inputs every run; the seed is printed to reproduce it with --seed.
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "little")
    print(f"seed {seed}")
    ok = True
    with tempfile.TemporaryDirectory() as workdir:
        for name, (preset, overrides) in CONFIGS.items():
            if args.only and name != args.only:
                continue
            ok &= check(args.tlc, args.tlrun, name, preset, overrides, workdir, seed)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
