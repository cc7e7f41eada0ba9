#!/usr/bin/env python3
"""A roofline estimate of one training step of a tlc artifact on an H100.

Usage: tools/gpu/model.py MODEL.tlx [--kernels DIR/kernels.cu] [--entry train_step]
                          [--anchor FILE.jsonl] [--json]

Reads the artifact's manifest (the schedule: every kernel step with its
buffers, every GEMM with its shape) and its CUDA source (the same text as
`tlc compile ... --dump-kernels DIR` writes to DIR/kernels.cu; --kernels reads
that file instead). For each step it estimates FLOPs and bytes, takes the
larger of FLOPs / (peak x efficiency) and bytes / (bandwidth x efficiency),
adds a per-launch floor, and prints a table per kernel (or GEMM shape), the
predicted step time and tokens/s next to the PyTorch anchor
(../shared/anchors/torch_baseline_h100_*.jsonl, torch.compile).

Assumptions (H100 SXM; change them here, they are the model):
  - peaks: 989 TFLOP/s dense bf16 tensor cores, 67 TFLOP/s f32 FMA, 3.35 TB/s HBM3.
  - GEMMs (cuBLASLt): 75% of peak above 10 GFLOP (PyTorch's layer GEMMs reach
    745 TFLOP/s on this GPU, anchors/components), 50% below; f32 GEMMs on
    the FMA peak (no TF32); operands and result cross HBM once.
  - attention on tensor cores (TlFlashAttention, mma.sync m16n8k16): forward
    35% of peak, the backward (dK, dV and dQ in one pass, 5 matmuls) 25%
    (FlashAttention-2's mma.sync kernels reach about 35% forward on H100);
    causal work counts the visible tiles. The backward's f32 dQ sum is read
    and written once per (key tile, query tile) pair; it stays in L2 (a
    group's dQ is 4 MB), taken at 5.5 TB/s, and overlaps the matmuls.
    Scalar f32 attention: 30% of FMA peak.
  - every other kernel is memory-bound: each of its buffers crosses HBM once,
    at 75% of bandwidth (the measured copy is 2.98 TB/s, 89%) or at what the
    loads it keeps in flight sustain, if less (Little's law): resident threads
    (grid x block, at most 2048 per SM on 132 SMs) x loads a thread has in
    flight (one per buffer it reads, times a `#pragma unroll N`, or 4 for a
    loop without one) x their
    width (16 bytes where the kernel uses tlLoad, Library/cuda_prelude.cuh's
    vector loads; else one element of the compute dtype), over 600 ns of
    load latency. Until issue 17 part 3 every such kernel was put at 75%,
    which hid the single-thread and 64-block reductions and the scalar
    2-byte loads.
  - launches: 3 us floor per kernel or GEMM. The executor replays a run as a
    CUDA graph from its second run on (TLC_CUDA_GRAPHS); the host then queues
    ahead of kernels longer than its launch cost, but the GPU-side gap between
    nodes is not measured, so the floor stays until a GPU measures it.
  - AdamW and the clipping norm run once per step over the flat buffers
    (30 + 4 bytes per parameter), as in the anchor, which steps every micro-batch.
Nothing here has been measured by tlc on a GPU yet: compare with tools/gpu/bench.sh there.
"""
import argparse
import glob
import json
import os
import re
import struct
import sys
from collections import OrderedDict

PEAK_BF16 = 989e12
PEAK_F32 = 67e12
BANDWIDTH = 3.35e12
GEMM_EFF_LARGE, GEMM_EFF_SMALL, GEMM_LARGE_FLOPS = 0.75, 0.50, 1e10
ATTN_EFF = {"forward": 0.35, "gradKeyValueQuery": 0.25}
L2_BANDWIDTH = 5.5e12
SCALAR_ATTN_EFF = 0.30
MEMORY_EFF = 0.75
SMS, THREADS_PER_SM, LOAD_LATENCY_S = 132, 2048, 600e-9
LAUNCH_S = 3e-6
ADAMW_BYTES_PER_PARAM = 30 + 4  # master, m, v read+write, grad read, bf16 params write; sum of squares
DTYPE_BYTES = {"f32": 4, "bf16": 2, "f16": 2, "f64": 8}


def read_artifact(path):
    """The manifest (dict) and the CUDA source of a .tlx (formats/artifact.cpp)."""
    data = open(path, "rb").read()
    if data[:3] != b"TLX":
        sys.exit(f"model: {path}: not a tlc artifact")
    pos = 8
    sections = []
    for _ in range(3):  # manifest, CPU source, CUDA source
        (n,) = struct.unpack_from("<Q", data, pos)
        sections.append(data[pos + 8:pos + 8 + n])
        pos += 8 + n
    return json.loads(sections[0]), sections[2].decode()


def kernel_bodies(cuda):
    """Kernel name -> body text."""
    bodies = {}
    for m in re.finditer(r'__global__ void (\w+)\(', cuda):
        end = cuda.find("\n}\n", m.end())
        bodies[m.group(1)] = cuda[m.end():end]
    return bodies


def visible_fraction(t, s, causal, tile=64):
    """Share of the T x S key tiles a causal kernel visits (whole tiles)."""
    if not causal:
        return 1.0
    q_tiles, k_tiles = -(-t // tile), -(-s // tile)
    return sum(min(q + 1, k_tiles) for q in range(q_tiles)) / (q_tiles * k_tiles)


def attention_cost(body, batch):
    """(flops, efficiency x peak, label) of a tensor-core attention kernel, or None."""
    m = re.search(r"TlFlashAttention<(\d+), (\d+), (\d+), (\d+), (\d+), (true|false)(?:, (?:true|false))?>::(\w+)\(", body)
    if not m:
        return None
    h, _kv, t, s, d = (int(x) for x in m.groups()[:5])
    causal, which = m.group(6) == "true", m.group(7)
    matmuls = {"forward": 2, "gradKeyValueQuery": 5}[which]
    flops = 2 * matmuls * batch * h * t * s * d * visible_fraction(t, s, causal)
    seconds = flops / (ATTN_EFF[which] * PEAK_BF16)
    if which == "gradKeyValueQuery":  # the dQ sum in L2: a BQ x D f32 tile read and written per pair
        bq = 32 if d > 64 else 64
        pairs = batch * h * -(-t // bq) * -(-s // 64) * visible_fraction(t, s, causal, 64)
        seconds = max(seconds, pairs * bq * d * 4 * 2 / L2_BANDWIDTH)
    return flops, flops / seconds, f"attention {which} (tensor cores)"


def scalar_attention_cost(name, body, shapes):
    """The scalar kernels (f32): the same FLOPs on FMA units."""
    if "attention" not in name or "TlFlashAttention" in body or name.endswith("_delta"):
        return None
    b, h, t, s, d, causal = shapes
    matmuls = 3 if name.endswith("_dq") else 4 if name.endswith("_dkdv") else 2
    flops = 2 * matmuls * b * h * t * s * d * visible_fraction(t, s, causal)
    return flops, SCALAR_ATTN_EFF * PEAK_F32, "attention (scalar f32)"


def kernel_bandwidth(body, grid, block, reads, element_bytes):
    """Bytes/s a memory-bound kernel sustains: 75% of HBM, or less when its
    resident threads keep too few bytes in flight (Little's law)."""
    threads = min(max(grid, 1) * max(block, 1), SMS * THREADS_PER_SM)
    width = 16 if "tlLoad(" in body else element_bytes
    # A loop without a pragma: nvcc's usual unroll by 4 of a simple loop.
    unroll = max([int(u) for u in re.findall(r"#pragma unroll (\d+)", body)] + [4 if "for (" in body else 1])
    in_flight = threads * max(reads, 1) * width * unroll
    return min(MEMORY_EFF * BANDWIDTH, in_flight / LOAD_LATENCY_S)


def model(manifest, cuda, entry_name):
    entry = next((e for e in manifest["entry_points"] if e["name"] == entry_name), None)
    if entry is None:
        sys.exit(f"model: the artifact has no entry point {entry_name}")
    cfg = manifest["config"]
    batch, seq = cfg.get("micro_batch", 1), cfg.get("seq", 1)
    head_dim = cfg["dim"] // cfg["heads"]
    shapes = (batch, cfg["heads"], seq, seq, head_dim, True)
    bodies = kernel_bodies(cuda)
    specs = {k["name"]: k for k in manifest["kernels"]}
    # The compute dtype, from the CUDA source: bf16 artifacts store activations as uint16_t.
    element_bytes = 2 if re.search(r"__global__ void k\d+_\w+\([^)]*uint16_t \*", cuda) else 4
    buffers = manifest["buffers"]
    rows = OrderedDict()

    def add(key, label, flops, nbytes, seconds):
        r = rows.setdefault(key, {"what": label, "count": 0, "flops": 0.0, "bytes": 0.0, "seconds": 0.0})
        r["count"] += 1
        r["flops"] += flops
        r["bytes"] += nbytes
        r["seconds"] += seconds

    for step in entry["steps"]:
        nbytes = sum(buffers[i]["bytes"] for i in step.get("buffers", []))
        if step["kind"] == "gemm":
            g = step["gemm"]
            flops = 2.0 * g["m"] * g["n"] * g["k"] * g["batch"]
            eff = GEMM_EFF_LARGE if flops > GEMM_LARGE_FLOPS else GEMM_EFF_SMALL
            peak = PEAK_BF16 if g.get("dtype") in ("bf16", "f16") else PEAK_F32
            seconds = max(flops / (eff * peak), nbytes / (MEMORY_EFF * BANDWIDTH)) + LAUNCH_S
            key = f"gemm {g['batch']}x{g['m']}x{g['n']}x{g['k']}{' T_a' if g['trans_a'] else ''}{' T_b' if g['trans_b'] else ''}"
            add(key, "GEMM (cuBLASLt)", flops, nbytes, seconds)
        elif step["kind"] == "kernel":
            name = step["kernel"]
            body = bodies.get(name, "")
            cost = attention_cost(body, batch) or scalar_attention_cost(name, body, shapes)
            if cost:
                flops, rate, label = cost
                seconds = max(flops / rate, nbytes / (MEMORY_EFF * BANDWIDTH)) + LAUNCH_S
            else:
                spec = specs.get(name, {})
                # The buffers it reads: its const pointer parameters.
                reads = len(re.findall(r"const \w+ \*", body[:body.find(")")]))
                bw = kernel_bandwidth(body, step.get("grid", spec.get("grid", 1)), spec.get("block", 256), reads,
                                      element_bytes)
                flops, label = 0.0, f"memory-bound ({bw / BANDWIDTH:.0%} of HBM)"
                seconds = nbytes / bw + LAUNCH_S
            add(name, label, flops, nbytes, seconds)
        else:  # zero: a memset
            add("zero", "memset", 0.0, nbytes, nbytes / (MEMORY_EFF * BANDWIDTH) + LAUNCH_S)

    params = manifest["flat"]["elements"]
    for name, per_param, reads in (("opt_adamw", ADAMW_BYTES_PER_PARAM - 4, 5), ("opt_sumsq_partial", 4, 1)):
        spec = specs.get(name, {"grid": 4096, "block": 256})
        bw = kernel_bandwidth(bodies.get(name, ""), spec["grid"], spec["block"], reads, 4)
        add(name + " (once a step)", f"memory-bound ({bw / BANDWIDTH:.0%} of HBM)", 0.0, params * per_param,
            params * per_param / bw + (2 if name == "opt_sumsq_partial" else 1) * LAUNCH_S)
    total = sum(r["seconds"] for r in rows.values())
    return rows, total, batch * seq


def anchor_tokens_per_s(path):
    best = None
    for line in open(path):
        rec = json.loads(line)
        if rec.get("what") == "train_step" and rec.get("model") == "tinyllama-1.1b" and rec.get("compile"):
            best = rec
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("artifact")
    ap.add_argument("--kernels", help="DIR/kernels.cu from tlc compile --dump-kernels (default: the artifact's)")
    ap.add_argument("--entry", default="train_step")
    ap.add_argument("--anchor", help="the PyTorch anchor (default: ../shared/anchors/torch_baseline_h100_*.jsonl)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    manifest, cuda = read_artifact(args.artifact)
    if args.kernels:
        cuda = open(args.kernels).read()
    rows, total, tokens = model(manifest, cuda, args.entry)

    anchor = None
    path = args.anchor
    if not path:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        found = sorted(glob.glob(os.path.join(root, "..", "shared", "anchors", "torch_baseline_h100_*.jsonl")))
        path = found[-1] if found else None
    if path and os.path.exists(path):
        anchor = anchor_tokens_per_s(path)

    if args.json:
        print(json.dumps({"rows": rows, "step_s": total, "tokens_per_s": tokens / total,
                          "anchor_tokens_per_s": anchor and anchor["tokens_per_s"]}, indent=1))
        return
    print(f"{'kernel / GEMM shape':44} {'what':34} {'n':>5} {'GFLOP':>10} {'GB':>9} {'ms':>9} {'share':>6}")
    for key, r in sorted(rows.items(), key=lambda kv: -kv[1]["seconds"]):
        print(f"{key[:44]:44} {r['what'][:34]:34} {r['count']:5d} {r['flops'] / 1e9:10.1f} "
              f"{r['bytes'] / 1e9:9.2f} {r['seconds'] * 1e3:9.3f} {100 * r['seconds'] / total:5.1f}%")
    flops = sum(r["flops"] for r in rows.values())
    print(f"\npredicted step ({args.entry}, {tokens:,} tokens): {total * 1e3:.1f} ms, "
          f"{tokens / total:,.0f} tokens/s, {flops / total / 1e12:.0f} TFLOP/s "
          f"({100 * flops / total / PEAK_BF16:.0f}% of {PEAK_BF16 / 1e12:.0f})")
    if anchor:
        print(f"PyTorch anchor (torch.compile, {anchor['micro_batch']} x {anchor['seq']}): "
              f"{anchor['median_step_s'] * 1e3:.1f} ms, {anchor['tokens_per_s']:,} tokens/s")


if __name__ == "__main__":
    main()
