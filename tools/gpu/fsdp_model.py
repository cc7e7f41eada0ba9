#!/usr/bin/env python3
"""Memory per GPU and step time of data-parallel training at zero=0..3 on N GPUs, from a model.

Usage: tools/gpu/fsdp_model.py MODEL.tlx [--gpus 8,16] [--bus 8=360,16=45]
                               [--global-tokens 2097152] [--json]

MODEL.tlx is a compiled training step (e.g. the 1.1b preset in bf16 at micro-batch 8 x 2048;
compile it with --recompute or --memory-budget to see what recomputation buys). One GPU's
micro-batch time comes from tools/gpu/model.py's roofline of the artifact; this script adds the
optimizer's share and the collectives of each ZeRO level and prints, per GPU count and level:
the memory per GPU, the bytes each GPU moves, the communication time, and the step time and
tokens/s with and without overlap.

Assumptions (the model; change them here):
  - memory per GPU (P parameters, bf16 parameters, f32 gradients, f32 master + m + v + a decay
    byte = 13 bytes, the artifact's planned arena, a 32 MiB GEMM workspace):
      zero=0  2P + 4P + 13P
      zero=1  2P + 4P + 13P/N
      zero=2  2P + 4P/N + 13P/N + two f32 gradient buckets of one layer
      zero=3  2P/N + 4P/N + 13P/N + two layers' gathered bf16 parameters + two f32 gradient
              buckets of one layer (the embedding and the head count as layers)
  - collectives are NCCL rings; with NCCL's bus bandwidth B (GB/s, --bus), an all-reduce of S
    bytes takes 2 S (N-1)/N / B, a reduce-scatter or all-gather S (N-1)/N / B.
      zero=0  an all-reduce of the f32 gradients once a step (after accumulation)
      zero=1/2 a reduce-scatter of the f32 gradients and an all-gather of the bf16 parameters,
              once a step
      zero=3  every micro-batch: an all-gather of the bf16 parameters before the forward and
              again before the backward, and a reduce-scatter of its f32 gradients
  - default bus bandwidths: 8 GPUs in one NVLink-4 node (H100 SXM) 360 GB/s; 16 GPUs on two
    nodes with 400 Gb/s InfiniBand per GPU 45 GB/s (90% of 50 GB/s).
  - overlap ("hidden"): zero=0..2 hide their once-a-step reductions behind the last
    micro-batch's backward (2/3 of it); zero=3 hides each micro-batch's collectives behind that
    micro-batch's compute (prefetching the next layer, reduce-scattering the previous one).
  - the optimizer (tools/gpu/model.py's AdamW row) runs over 1/N of the parameters at zero>=1.
  - the global batch is TinyLlama's 2,097,152 tokens a step (1,024 x 2,048); each GPU
    accumulates global / (N x micro-batch tokens) micro-batches.
Nothing here is measured: it is arithmetic on stated figures, to size a run before renting it.
"""
import argparse
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from model import model, read_artifact  # noqa: E402

WORKSPACE = 32 << 20
OPTIMIZER_BYTES = 13  # f32 master, m, v and the decay byte, per parameter


def layer_units(manifest):
    """Elements of each unit FSDP gathers at once: a decoder layer, or a tensor outside them."""
    units = {}
    for p in manifest["params"]:
        m = re.search(r"\.layers\.(\d+)\.", p["name"])
        key = f"layer {m.group(1)}" if m else p["name"]
        n = 1
        for d in p["shape"]:
            n *= d
        units[key] = units.get(key, 0) + n
    return units


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("artifact")
    ap.add_argument("--gpus", default="8,16")
    ap.add_argument("--bus", default="8=360,16=45", help="N=GB/s of NCCL bus bandwidth per GPU count")
    ap.add_argument("--global-tokens", type=int, default=2097152)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    manifest, cuda = read_artifact(args.artifact)
    rows, total, tokens = model(manifest, cuda, "train_step")
    optimizer_s = next((r["seconds"] for k, r in rows.items() if k.startswith("opt_adamw")), 0.0)
    micro_s = total - optimizer_s
    P = manifest["flat"]["elements"]
    param_bytes = 2 if manifest["params"][0]["dtype"] == "bf16" else 4
    arena = manifest["arena_bytes"]
    unit = max(layer_units(manifest).values())
    bus = {int(k): float(v) * 1e9 for k, v in (item.split("=") for item in args.bus.split(","))}

    results = []
    for n in (int(x) for x in args.gpus.split(",")):
        if n not in bus:
            sys.exit(f"fsdp_model: no --bus bandwidth for {n} GPUs")
        b, ring = bus[n], (n - 1) / n
        accumulation = max(1, args.global_tokens // (n * tokens))
        for zero in range(4):
            memory = arena + WORKSPACE
            memory += param_bytes * P / (n if zero == 3 else 1)
            memory += 4 * P / (n if zero >= 2 else 1)
            memory += OPTIMIZER_BYTES * P / (n if zero >= 1 else 1)
            if zero >= 2:
                memory += 2 * 4 * unit
            if zero == 3:
                memory += 2 * param_bytes * unit
            if zero == 0:
                per_step, per_micro = 2 * 4 * P * ring / b, 0.0
            elif zero < 3:
                per_step, per_micro = (4 * P + param_bytes * P) * ring / b, 0.0
            else:
                per_step, per_micro = 0.0, (2 * param_bytes * P + 4 * P) * ring / b
            comm = per_step + accumulation * per_micro
            opt = optimizer_s / (n if zero >= 1 else 1)
            compute = accumulation * micro_s + opt
            exposed = (max(0.0, per_step - 2 / 3 * micro_s) +
                       accumulation * max(0.0, per_micro - micro_s))
            step_hidden, step_serial = compute + exposed, compute + comm
            results.append({"gpus": n, "zero": zero, "memory_gib": memory / 2**30,
                            "comm_gb_per_gpu": comm * b / 1e9, "comm_s": comm, "compute_s": compute,
                            "step_s_hidden": step_hidden, "step_s_serial": step_serial,
                            "tokens_per_s_hidden": n * accumulation * tokens / step_hidden,
                            "tokens_per_s_serial": n * accumulation * tokens / step_serial,
                            "accumulation": accumulation, "bus_gb_s": b / 1e9})
    if args.json:
        print(json.dumps(results, indent=1))
        return
    cfg = manifest["config"]
    print(f"{os.path.basename(args.artifact)}: {P:,} parameters, micro-batch {cfg.get('micro_batch')} x "
          f"{cfg.get('seq')}, arena {arena / 1e9:.2f} GB; one micro-batch {micro_s * 1e3:.0f} ms, AdamW "
          f"{optimizer_s * 1e3:.0f} ms on one GPU (tools/gpu/model.py); global batch {args.global_tokens:,} "
          "tokens")
    print(f"{'GPUs':>4} {'zero':>4} {'GiB/GPU':>8} {'fits':>6} {'accum':>5} {'bus GB/s':>8} {'GB/GPU':>7} "
          f"{'comm s':>7} {'step s':>7} {'(serial)':>8} {'tok/s':>10} {'(serial)':>10}")
    for r in results:
        fits = "40G" if r["memory_gib"] <= 40 else "80G" if r["memory_gib"] <= 80 else "no"
        print(f"{r['gpus']:>4} {r['zero']:>4} {r['memory_gib']:>8.1f} {fits:>6} {r['accumulation']:>5} "
              f"{r['bus_gb_s']:>8.0f} {r['comm_gb_per_gpu']:>7.1f} {r['comm_s']:>7.2f} {r['step_s_hidden']:>7.2f} "
              f"{r['step_s_serial']:>8.2f} {r['tokens_per_s_hidden']:>10,.0f} {r['tokens_per_s_serial']:>10,.0f}")


if __name__ == "__main__":
    main()
