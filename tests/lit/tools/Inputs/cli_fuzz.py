"""Feeds random --set values and option orders to `tlc emit` and `tlc
compile` and checks every run ends with exit 0, 1 or 2 and, when not 0, a
"tlc: " message: never a signal, an exit >= 128 or a hang.

usage: cli_fuzz.py WORKDIR [--runs N] [--seed S]
A fresh seed is drawn unless --seed is given; it is printed so a failure can
be replayed. The run count bounds the time (about a minute for the default).
"""
import argparse
import os
import random
import subprocess
import sys

KEYS = ["dim", "layers", "heads", "kv_heads", "ffn", "vocab", "seq", "micro_batch",
        "norm_eps", "rope_theta"]
ODD_KEYS = ["width", "DIM", "dim ", " layers", "", "=", "layers.x"]
BASE = {"layers": 1, "dim": 16, "heads": 2, "kv_heads": 1, "ffn": 24, "vocab": 50, "seq": 4,
        "micro_batch": 2}
VALUES = ["0", "1", "2", "3", "4", "7", "8", "16", "-1", "-0", "+4", "1024", "1025", "100000",
          "65536", "2147483647", "2147483648", "4294967296", "4611686018427387904",
          "9223372036854775807", "9223372036854775808", "18446744073709551616",
          "99999999999999999999999", "1e3", "0.5", "1e-5", "1e308", "1e309", "nan", "inf",
          "-inf", "abc", "", " 3", "3 ", "1_0", "0x10", "4=4", "2,3"]
TIMEOUT = 120  # seconds per command: far above any legal run here; reaching it is a hang


def run(cmd, failures):
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        failures.append(f"hang (> {TIMEOUT} s): {cmd}")
        return None
    rc = proc.returncode
    if rc < 0 or rc >= 128:
        failures.append(f"signal/exit {rc}: {cmd}\n{proc.stderr[-2000:]}")
    elif rc not in (0, 1, 2):
        failures.append(f"exit {rc} outside 0/1/2: {cmd}")
    elif rc != 0 and "tlc: " not in proc.stderr:
        failures.append(f"exit {rc} without a 'tlc: ' message: {cmd}\n{proc.stderr[-2000:]}")
    return rc


def random_sets(rng):
    """One or two --set values: the base config with a few fields fuzzed."""
    config = dict(BASE)
    for _ in range(rng.randint(0, 2)):
        key = rng.choice(KEYS) if rng.random() < 0.9 else rng.choice(ODD_KEYS)
        config[key] = rng.choice(VALUES) if rng.random() < 0.7 else str(2 * rng.randint(1, 32))
    items = [f"{k}={v}" if rng.random() < 0.97 else k for k, v in config.items()]
    rng.shuffle(items)
    if len(items) > 1 and rng.random() < 0.5:
        cut = rng.randint(1, len(items) - 1)
        return [",".join(items[:cut]), ",".join(items[cut:])], config
    return [",".join(items)], config


def option(rng, name, value):
    return [f"{name}={value}"] if rng.random() < 0.3 and name.startswith("--") else [name, value]


def emit_command(rng, out):
    sets, config = random_sets(rng)
    groups = [option(rng, "--preset", rng.choice(["tiny"] * 6 + ["124m", "1.1b", "7b", ""]))]
    groups += [option(rng, "--set", s) for s in sets]
    if rng.random() < 0.3:
        groups.append(option(rng, "--dtype", rng.choice(["f32", "bf16", "f16", "f64", "f8"])))
    for flag in ("--train-step", "--fused"):
        if rng.random() < 0.2:
            groups.append([flag])
    if rng.random() < 0.05:
        groups.append(rng.choice([["--preset", "tiny"], ["--bogus"], ["extra"], ["-o"]]))
    groups.append(["-o", out])
    if rng.random() < 0.97:  # the model name, usually between options
        groups.append(["tinyllama"])
    rng.shuffle(groups)
    words = [w for g in groups for w in g]
    if rng.random() < 0.1:  # anywhere, even between an option and its value
        words.insert(rng.randint(0, len(words)), words.pop(rng.randint(0, len(words) - 1)))
    return ["tlc", "emit"] + words, config


def small(config):
    """A model small enough to compile within the time budget."""
    try:
        return int(config["layers"]) <= 2 and int(config["seq"]) <= 64 and \
            int(config["dim"]) * int(config["vocab"]) <= 1 << 20
    except (ValueError, KeyError):
        return False


def compile_command(rng, mlir, workdir, i):
    groups = [["-o", os.path.join(workdir, f"c{i}.tlx")]]
    if rng.random() < 0.5:
        groups.append(option(rng, "--target", rng.choice(["cpu", "cuda", "all", "tpu", ""])))
    if rng.random() < 0.2:
        groups.append(["--dump-kernels", os.path.join(workdir, f"k{i}")])
    if rng.random() < 0.1:
        groups.append(option(rng, "--arch", rng.choice(["sm_", "compute_90", "90", ","])))
    if rng.random() < 0.1:
        groups.append(rng.choice([["-o", "x.tlx"], ["--print-ir-after-all"], ["--jsn"],
                                  ["--target"], [mlir]]))
    rng.shuffle(groups)
    words = [w for g in groups for w in g]
    words.insert(rng.randint(0, len(words)), mlir)
    return ["tlc", "compile"] + words


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("workdir")
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    print(f"cli_fuzz: seed {seed} (replay with --seed {seed})")
    rng = random.Random(seed)
    os.makedirs(args.workdir, exist_ok=True)
    failures, codes, compiled = [], {}, 0
    for i in range(args.runs):
        out = os.path.join(args.workdir, f"e{i}.mlir")
        cmd, config = emit_command(rng, out)
        rc = run(cmd, failures)
        codes[rc] = codes.get(rc, 0) + 1
        if rc == 0 and small(config) and compiled < args.runs // 6:
            compiled += 1
            run(compile_command(rng, out, args.workdir, i), failures)
        if os.path.exists(out):
            os.remove(out)
    print(f"cli_fuzz: {args.runs} emits (exit codes {sorted(codes.items(), key=str)}), "
          f"{compiled} compiles")
    for f in failures:
        print("FAILED:", f)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
