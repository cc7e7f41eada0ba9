"""Prints the GPU benchmark's table: tlc's tokens/s (median over the steps
after the second, from metrics.jsonl) beside the PyTorch anchor run in the
same call, and the anchor's recorded figures. Plain Python."""
import json
import os
import statistics
import sys

MODELS = {"124m": "llama-124m", "1.1b": "tinyllama-1.1b"}


def read_jsonl(path):
    try:
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return []


def main(results, recorded_path):
    torch_now = read_jsonl(os.path.join(results, "baseline.jsonl"))
    recorded = read_jsonl(recorded_path)
    gpu = next((e["gpu"] for e in torch_now if e.get("what") == "ceilings"), "this GPU")
    print(f"{'model':16s} {'tlc tok/s':>10s} {'torch eager':>12s} {'tlc/torch':>10s}   recorded anchor (H100)")
    for ours, theirs in MODELS.items():
        steps = read_jsonl(os.path.join(results, f"bench-tlc-{ours}.jsonl"))
        rates = [e["tokens_per_s"] for e in steps[2:] if "tokens_per_s" in e and not e.get("skipped")]
        tlc = statistics.median(rates) if rates else None
        eager = next((e["tokens_per_s"] for e in torch_now
                      if e.get("what") == "train_step" and e["model"] == theirs and not e["compile"]), None)
        then = ", ".join(f"{'compile' if e['compile'] else 'eager'} {e['tokens_per_s']}" for e in recorded
                         if e.get("what") == "train_step" and e["model"] == theirs)
        ratio = f"{tlc / eager:.2f}x" if tlc and eager else "-"
        print(f"{theirs:16s} {tlc or 0:10.0f} {eager or 0:12.0f} {ratio:>10s}   {then}")
        mfu = [e["mfu"] for e in steps[2:] if "mfu" in e]
        if mfu:
            print(f"{'':16s} tlc MFU {statistics.median(mfu):.1%} (PaLM's estimate, docs/training.md)")
    print(f"on {gpu}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
