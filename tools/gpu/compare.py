"""Prints the CUDA-vs-CPU table of the GPU check and fails on a mismatch.

Plain Python (no numpy needed on the GPU machine). f32 runs TF32 GEMMs on
the GPU (as PyTorch's anchor does), so it is held to 1e-3 (loss) and 1e-2
(gradients, ||cuda - cpu|| / ||cpu|| per tensor); bf16 to 2e-2 and 1e-1.
"""
import array
import json
import math
import os
import struct
import sys

TOLERANCE = {"f32": (1e-3, 1e-2), "bf16": (2e-2, 1e-1)}


def read_f32_safetensors(path):
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        assert entry["dtype"] == "F32", f"{path}: {name} is {entry['dtype']}"
        begin, end = entry["data_offsets"]
        out[name] = array.array("f", data[begin:end])
    return out


def rel_error(a, b):
    diff = sum((x - y) * (x - y) for x, y in zip(a, b))
    norm = sum(y * y for y in b)
    return math.sqrt(diff) / max(math.sqrt(norm), 1e-30)


def main(prepared, results):
    ok = True
    print(f"{'dtype':6s} {'cpu loss':>12s} {'cuda loss':>12s} {'loss rel':>10s} {'worst grad rel':>15s}  tensor")
    for dtype, (loss_tol, grad_tol) in TOLERANCE.items():
        try:
            cpu = json.load(open(os.path.join(prepared, f"cpu-{dtype}.json")))
            cuda = json.load(open(os.path.join(results, f"cuda-{dtype}.json")))
            cg = read_f32_safetensors(os.path.join(prepared, f"cpu-{dtype}.safetensors"))
            gg = read_f32_safetensors(os.path.join(results, f"cuda-{dtype}.safetensors"))
        except (OSError, ValueError) as e:
            print(f"{dtype:6s} missing results: {e}")
            ok = False
            continue
        rel = abs(cuda["loss"] - cpu["loss"]) / abs(cpu["loss"])
        errors = {k: rel_error(gg[k], cg[k]) for k in cg if k in gg}
        if not errors:
            print(f"{dtype:6s} FAIL: no gradient of {sorted(cg)[:3]}... in the CUDA results ({sorted(gg)[:3]}...)")
            ok = False
            continue
        worst = max(errors, key=lambda k: errors[k] if errors[k] == errors[k] else math.inf)
        good = rel < loss_tol and set(gg) == set(cg) and all(e < grad_tol for e in errors.values())
        ok &= good
        print(f"{dtype:6s} {cpu['loss']:12.6f} {cuda['loss']:12.6f} {rel:10.2e} {errors[worst]:15.2e}  {worst}"
              f"  {'ok' if good else 'FAIL'} (tol {loss_tol:g}/{grad_tol:g}) [{cuda.get('device', '')}]")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
