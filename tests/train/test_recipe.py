#!/usr/bin/env python3
"""TinyLlama's recipe end to end (CPU device): data mixtures, schedules, phases, samples.

  mixture   two sources whose token ids do not overlap (--data a=DIR:0.7 --data b=DIR:0.3): the
            consumed token stream (TLC_TRACE_DATA) holds each source's share within one micro-batch
            at every window's end; metrics.jsonl's source_tokens and source_val_loss agree with it;
            the small source starts its next epoch and says so; a [data.NAME] config table is the
            same run; on 2 MPI ranks the ranks' micro-batches are disjoint and together the 1-rank
            stream
  resume    16 steps straight == 8 + resume for a mixture, bitwise (losses, stream, weights)
  schedule  metrics.jsonl's lr follows an independent implementation of cosine, wsd (linear,
            cosine, sqrt) and constant; lr set anew on resume changes the rate and keeps the
            optimizer (AdamW's step count goes on)
  phases    --init-from CHECKPOINT --resume-optimizer on new data: step 0, fresh schedule, and the
            moments after one step are beta * the checkpoint's plus those of a fresh start from the
            same weights, exactly as AdamW's update says
  evaluate  eval_every scores eval_tasks into metrics.jsonl, equal to tlrun evaluate on the checkpoint
            of that step; a missing task file is refused before anything is written
  samples   sample_every writes samples.jsonl and the log; a greedy sample equals tlrun generate
            from the checkpoint of that step; resume keeps the samples up to its step
  bad-input every bad mixture, schedule or phase option exits 2 naming it, writing nothing

Fresh random data every run (the seed is printed). Run with /usr/bin/python3.
"""
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trainlib import (check, compile_model, merge_sets, metrics, prepare_fortunes, read_safetensors,  # noqa: E402
                      run_groups, tree_state, write_shard)

VOCAB = 400
MODEL_SETS = f"layers=2,dim=64,heads=4,kv_heads=2,ffn=96,vocab={VOCAB},seq=16,micro_batch=2"
BASE = "batch_tokens=128,warmup_steps=2,lr=1e-2,min_lr=1e-3,log_every=1,val_every=0,checkpoint_every=0"
MB_TOKENS = 2 * 16


def tlrun(*args, env=None):
    return subprocess.run([ARGS.tlrun, *args], capture_output=True, text=True, env=env)


def train(out, *extra, env=None):
    return tlrun("train", TLX, "--out", out, *extra, env=env)


def source(name, rng, lo, hi, tokens, val=600):
    """A source of ids in [lo, hi): which source a micro-batch came from is visible."""
    d = os.path.join(WORK, name)
    os.makedirs(d, exist_ok=True)
    write_shard(os.path.join(d, "s_train_000.bin"), rng.integers(lo, hi, tokens))
    write_shard(os.path.join(d, "s_val_000.bin"), rng.integers(lo, hi, val))
    return d


def trace(path, ranks=1):
    """The traced micro-batches: [(step, g, tokens)] per rank."""
    out = []
    for r in range(ranks):
        with open(f"{path}.rank{r}") as f:
            out.append([(int(p[0]), int(p[1]), tuple(map(int, p[2:]))) for p in (line.split() for line in f)])
    return out


def traced_env(path):
    env = dict(os.environ)
    env["TLC_TRACE_DATA"] = path
    return env


def test_mixture(work, rng):
    a, b = source("mix-a", rng, 0, 200, 20000), source("mix-b", rng, 200, 400, 2500)
    run, path = os.path.join(work, "mix"), os.path.join(work, "mix.trace")
    r = train(run, "--data", f"a={a}:0.7", "--data", f"b={b}:0.3", "--set", merge_sets(BASE, "steps=40,val_every=20"),
              env=traced_env(path))
    check(r.returncode == 0, f"a two-source mixture trains ({r.stderr.strip()[-300:]})")
    check(f"data mixture: a={a} (0.7), b={b} (0.3)" in r.stdout, "the mixture is announced")
    (stream,) = trace(path)
    check([g for _, g, _ in stream] == list(range(len(stream))), "the stream index counts every micro-batch")
    sources = ["a" if all(t < 200 for t in toks) else "b" if all(t >= 200 for t in toks) else "?"
               for _, _, toks in stream]
    check("?" not in sources, "every micro-batch comes from one source")
    window = 64  # the plan's window for shares >= 1/64
    worst = max(abs(sources[:n].count("a") - 0.7 * n) for n in range(window, len(stream) + 1, window))
    check(worst < 1, f"at every window's end source a supplied 0.7 of the micro-batches within one ({worst:.2f})")
    within = [sources[k * window:(k + 1) * window].count("a") for k in range(len(stream) // window)]
    check(all(abs(n - 0.7 * window) <= 1 for n in within), f"each window holds its share ({within})")
    m = metrics(run)
    last = m[-1]
    check(last["source_tokens"] == {"a": sources.count("a") * MB_TOKENS, "b": sources.count("b") * MB_TOKENS},
          f"source_tokens counts the consumed stream ({last['source_tokens']})")
    vals = [e for e in m if "val_loss" in e]
    check(len(vals) == 2 and all(set(e["source_val_loss"]) == {"a", "b"} for e in vals), "per-source validation losses")
    check(all(abs(e["val_loss"] - (0.7 * e["source_val_loss"]["a"] + 0.3 * e["source_val_loss"]["b"])) < 1e-9
              for e in vals), "val_loss is the share-weighted mean of the sources'")
    check("(a " in next(line for line in r.stdout.splitlines() if line.startswith("step 20/")),
          "the progress line shows the sources' validation losses")
    # b holds 2500 tokens: (2499 // 16) // 2 = 78 micro-batches an epoch; 160 * 0.3 = 48 drawn ... so run longer.
    r = train(os.path.join(work, "mix-long"), "--data", f"a={a}:0.5", "--data", f"b={b}:0.5", "--set",
              merge_sets(BASE, "steps=50"))
    check(r.returncode == 0 and "note: data source 'b' begins epoch 2 after 78 micro-batches" in r.stdout,
          f"a source that runs out starts its next epoch and says so ({r.stdout[-300:]})")

    # The same mixture as a [data.NAME] table.
    toml = os.path.join(work, "mix.toml")
    with open(toml, "w") as f:
        f.write(f'[data.a]\ndir = "{a}"\nweight = 7\n\n[data.b]\ndir = "{b}"\nweight = 3\n')
    path2 = os.path.join(work, "mix-table.trace")
    r = train(os.path.join(work, "mix-table"), "--config", toml, "--set", merge_sets(BASE, "steps=40,val_every=20"),
              env=traced_env(path2))
    check(r.returncode == 0 and trace(path2)[0] == stream and metrics(os.path.join(work, "mix-table")) [-1]["loss"] ==
          last["loss"], "a [data.NAME] table (weights 7:3) is the same run")

    # Two ranks share the stream without overlap (a low lr: reduction order is not amplified).
    if shutil.which("mpirun"):
        sets = merge_sets(BASE, "steps=12,lr=1e-3,min_lr=1e-4,zero=1")
        one, path1 = os.path.join(work, "mix-1"), os.path.join(work, "mix-1.trace")
        r = train(one, "--data", f"a={a}:0.7", "--data", f"b={b}:0.3", "--set", sets, env=traced_env(path1))
        path3 = os.path.join(work, "mix-2.trace")
        cmd = ["mpirun", "--allow-run-as-root", "--oversubscribe", "-np", "2", ARGS.tlrun, "train", TLX, "--out",
               os.path.join(work, "mix-2"), "--data", f"a={a}:0.7", "--data", f"b={b}:0.3", "--set", sets]
        r = subprocess.run(cmd, capture_output=True, text=True, env=traced_env(path3))
        check(r.returncode == 0, f"2 ranks train the mixture ({r.stderr.strip()[-300:]})")
        r0, r1 = trace(path3, 2)
        g0, g1 = {g for _, g, _ in r0}, {g for _, g, _ in r1}
        check(not (g0 & g1), "the ranks' micro-batches are disjoint")
        merged = sorted(r0 + r1, key=lambda e: e[1])
        check([t for _, _, t in merged] == [t for _, _, t in trace(path1)[0]], "together they are the 1-rank stream")
        l1 = [e["loss"] for e in metrics(one)]
        l2 = [e["loss"] for e in metrics(os.path.join(work, "mix-2"))]
        worst = max(abs(x - y) for x, y in zip(l1, l2)) if len(l1) == len(l2) == 12 else float("inf")
        check(worst < 1e-5, f"and the 1-rank losses (within 1e-5: {worst:.1e})")


def test_resume(work, rng):
    a, b = source("res-a", rng, 0, 200, 8000), source("res-b", rng, 200, 400, 3000)
    data = ["--data", f"a={a}:0.6", "--data", f"b={b}:0.4"]
    sets = merge_sets(BASE, "steps=16,checkpoint_every=8,val_every=8")
    straight, part = os.path.join(work, "res-straight"), os.path.join(work, "res-part")
    r = train(straight, *data, "--set", sets, env=traced_env(os.path.join(work, "res-s.trace")))
    check(r.returncode == 0, f"16 steps straight ({r.stderr.strip()[-300:]})")
    r = train(part, *data, "--set", sets, "--resume=" + straight + ":8",
              env=traced_env(os.path.join(work, "res-p.trace")))
    check(r.returncode == 0 and "resuming from" in r.stdout, f"resume from step 8 ({r.stderr.strip()[-300:]})")
    s, p = metrics(straight), metrics(part)
    check([e["loss"] for e in s[8:]] == [e["loss"] for e in p], "losses of steps 9..16 are bitwise equal")
    check([e.get("source_val_loss") for e in s[8:]] == [e.get("source_val_loss") for e in p],
          "per-source validation losses are bitwise equal")
    check(s[-1]["source_tokens"] == p[-1]["source_tokens"], "per-source tokens continue across the resume")
    ts, tp = trace(os.path.join(work, "res-s.trace"))[0], trace(os.path.join(work, "res-p.trace"))[0]
    check(ts[len(ts) // 2:] == tp, "the resumed stream is the straight run's second half")
    for f in ["model.safetensors", "optimizer.safetensors"]:
        with open(os.path.join(straight, "checkpoints", "16", f), "rb") as x, \
                open(os.path.join(part, "checkpoints", "16", f), "rb") as y:
            check(x.read() == y.read(), f"final {f} is bitwise equal")
    r = train(os.path.join(work, "res-r"), "--data", f"a={a}:0.5", "--data", f"b={b}:0.5", "--set", sets,
              "--resume=" + straight + ":8")
    check(r.returncode == 2 and "the data mixture cannot change on resume" in r.stderr and "--init-from" in r.stderr,
          f"another mixture on resume is refused, pointing at phases ({r.stderr.strip()[-200:]})")
    r = train(os.path.join(work, "res-d"), "--data", a, "--set", sets, "--resume=" + straight + ":8")
    check(r.returncode == 2 and "the data mixture cannot change" in r.stderr, "a plain directory on resume is refused")


def expected_lr(c, s):
    """The schedules, written from their definitions (docs/training.md)."""
    lr, lo, warm, steps = c["lr"], c["min_lr"], c["warmup_steps"], c["steps"]
    if s < warm:
        return lr * (s + 1) / warm
    kind = c.get("schedule", "cosine")
    if kind == "constant":
        return lr
    if kind == "wsd":
        decay = c.get("decay_steps", 0) or steps // 5
        start = steps - decay
        if s < start:
            return lr
        x = (s - start + 1) / decay
        f = {"linear": 1 - x, "cosine": 0.5 * (1 + math.cos(math.pi * x)), "sqrt": 1 - math.sqrt(x)}[
            c.get("decay_shape", "linear")]
        return lo + f * (lr - lo)
    x = (s - warm) / (steps - warm)
    return lo + 0.5 * (1 + math.cos(math.pi * x)) * (lr - lo)


def test_schedule(work, rng):
    data = source("sched", rng, 0, 400, 6000)
    cases = [{"schedule": "cosine"}, {"schedule": "constant"}, {"schedule": "wsd"},
             {"schedule": "wsd", "decay_steps": 7, "decay_shape": "cosine"},
             {"schedule": "wsd", "decay_steps": 9, "decay_shape": "sqrt"}]
    for i, case in enumerate(cases):
        c = {"lr": 1e-2, "min_lr": 1e-3, "warmup_steps": 3, "steps": 20, **case}
        sets = ",".join(f"{k}={v}" for k, v in c.items())
        run = os.path.join(work, f"sched-{i}")
        r = train(run, "--data", data, "--set", "batch_tokens=64,log_every=1,val_every=0,checkpoint_every=0," + sets)
        got = [e["lr"] for e in metrics(run)] if r.returncode == 0 else []
        want = [expected_lr(c, s) for s in range(20)]
        check(len(got) == 20 and max(abs(x - y) for x, y in zip(got, want)) < 1e-12,
              f"{sets}: metrics.jsonl's lr follows the schedule ({r.stderr.strip()[-200:]})")
    # A new lr on resume: the rate changes, the optimizer goes on.
    run = os.path.join(work, "sched-lr")
    sets = "batch_tokens=64,log_every=1,val_every=0,checkpoint_every=5,schedule=constant,lr=1e-2,warmup_steps=0"
    r = train(run, "--data", data, "--set", sets, "--steps", "5")
    r = train(run, "--data", data, "--resume", "--set", "lr=3e-3", "--steps", "8")
    m = metrics(run)
    with open(os.path.join(run, "checkpoints", "8", "state.json")) as f:
        state = json.load(f)
    check(r.returncode == 0 and [e["lr"] for e in m] == [1e-2] * 5 + [3e-3] * 3 and state["adam_step"] == 8,
          f"lr=3e-3 on resume takes effect and AdamW's step count goes on (8) ({r.stderr.strip()[-200:]})")


def test_phases(work, rng):
    first, second = source("ph-1", rng, 0, 200, 6000), source("ph-2", rng, 200, 400, 6000)
    base = os.path.join(work, "ph-base")
    r = train(base, "--data", first, "--set", "batch_tokens=64,steps=6,checkpoint_every=0,val_every=0,lr=1e-2,warmup_steps=1")
    check(r.returncode == 0, f"phase 1 ({r.stderr.strip()[-200:]})")
    ck = os.path.join(base, "checkpoints", "6")
    one = "batch_tokens=64,steps=1,checkpoint_every=0,val_every=0,lr=0,min_lr=0,warmup_steps=0,weight_decay=0"
    carried, fresh = os.path.join(work, "ph-carried"), os.path.join(work, "ph-fresh")
    r = train(carried, "--data", second, "--init-from", base, "--resume-optimizer", "--set", one)
    check(r.returncode == 0 and "optimizer state from" in r.stdout and "AdamW step 6" in r.stdout,
          f"--init-from RUN_DIR --resume-optimizer ({(r.stdout + r.stderr).strip()[-300:]})")
    r = train(fresh, "--data", second, "--init-from", base, "--set", one)
    check(r.returncode == 0, f"--init-from RUN_DIR alone ({r.stderr.strip()[-200:]})")
    with open(os.path.join(carried, "checkpoints", "1", "state.json")) as f:
        state = json.load(f)
    check(state["step"] == 1 and state["adam_step"] == 7 and state["data"] == {"epoch": 0, "micro_batch": 2},
          f"the new phase starts at step 0 on its data with AdamW's count going on ({state['step']}, {state['adam_step']})")
    old = read_safetensors(os.path.join(ck, "optimizer.safetensors"))
    new = read_safetensors(os.path.join(carried, "checkpoints", "1", "optimizer.safetensors"))
    cold = read_safetensors(os.path.join(fresh, "checkpoints", "1", "optimizer.safetensors"))
    # lr 0: the weights stay, so both runs see the same gradient g; AdamW: m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2.
    em = np.max(np.abs(new["exp_avg"] - (0.9 * old["exp_avg"] + cold["exp_avg"])))
    ev = np.max(np.abs(new["exp_avg_sq"] - (0.95 * old["exp_avg_sq"] + cold["exp_avg_sq"])) /
                (np.abs(new["exp_avg_sq"]) + 1e-30))
    check(em < 1e-6 and ev < 1e-5, f"the moments go on from the checkpoint's (|dm| {em:.1e}, relative |dv| {ev:.1e})")
    w0, w1 = read_safetensors(os.path.join(ck, "model.safetensors")), read_safetensors(
        os.path.join(carried, "checkpoints", "1", "model.safetensors"))
    check(all(np.array_equal(w0[k], w1[k]) for k in w0), "the weights are the checkpoint's (lr 0)")


def test_samples(work, rng):
    run = os.path.join(work, "samples")
    sets = merge_sets(BASE, "steps=12,checkpoint_every=6,sample_every=6,sample_count=2,sample_tokens=8,sample_temperature=0")
    r = train(run, "--data", DATA, "--set", merge_sets(sets, "sample_prompt=The cat"))
    check(r.returncode == 0, f"sampling during training ({r.stderr.strip()[-300:]})")
    with open(os.path.join(run, "samples.jsonl")) as f:
        samples = [json.loads(line) for line in f]
    check([(s["step"], s["sample"]) for s in samples] == [(6, 0), (6, 1), (12, 0), (12, 1)],
          "samples.jsonl: sample_count samples every sample_every steps")
    check(all(f"sample {s['step']}.{s['sample']}: The cat{s['text']}" in r.stdout for s in samples),
          "each sample is in the log")
    g = tlrun("generate", f"{run}:6", "--prompt", "The cat", "--max-tokens", "8", "--temperature", "0", "--json")
    ids = json.loads(g.stdout)["ids"] if g.returncode == 0 else None
    check(ids == samples[0]["ids"], f"a greedy sample is tlrun generate's from that step's checkpoint ({ids})")
    r = train(run, "--data", DATA, "--set", merge_sets(sets, "sample_prompt=The cat,steps=14"), f"--resume={run}:6")
    with open(os.path.join(run, "samples.jsonl")) as f:
        steps = [json.loads(line)["step"] for line in f]
    check(r.returncode == 0 and steps == [6, 6, 12, 12], f"a resume from 6 drops the abandoned samples ({steps})")
    plain = source("samples-plain", rng, 0, 400, 3000)
    r = train(os.path.join(work, "samples-bad"), "--data", plain, "--set", merge_sets(BASE, "steps=2,sample_every=1"))
    check(r.returncode == 2 and "key 'sample_every'" in r.stderr and "no tokenizer" in r.stderr,
          f"sample_every without a tokenizer is refused naming the key ({r.stderr.strip()[-200:]})")


def test_evaluate(work, rng):
    words = ["cat", "dog", "tree", "house", "river", "stone", "cloud", "apple", "road", "light"]
    task = os.path.join(work, "piqa.jsonl")
    with open(task, "w") as f:
        for i in range(24):
            w = rng.choice(words, size=6)
            # short choices: the model's context is 16 tokens (longer contexts are cut from the left)
            f.write(json.dumps({"goal": f"How do I {w[0]} the {w[1]}?", "sol1": f"a {w[2]}", "sol2": f"the {w[4]}",
                                "label": int(rng.integers(0, 2))}) + "\n")
    run = os.path.join(work, "eval-run")
    sets = merge_sets(BASE, f"steps=6,checkpoint_every=3,eval_every=3,eval_tasks=piqa={task}")
    r = train(run, "--data", DATA, "--set", sets)
    check(r.returncode == 0 and "eval 3: piqa acc" in r.stdout, f"eval_every scores the tasks ({r.stderr.strip()[-300:]})")
    logged = {e["step"]: e for e in metrics(run) if "eval_piqa_acc" in e}
    check(sorted(logged) == [3, 6], "eval_piqa_acc and _acc_norm in metrics.jsonl at steps 3 and 6")
    for step in (3, 6):
        e = tlrun("evaluate", f"{run}:{step}", "--tasks", f"piqa={task}", "--json")
        got = json.loads(e.stdout[e.stdout.index("{"):])["tasks"][0] if e.returncode == 0 else {}
        check(got.get("acc") == logged[step]["eval_piqa_acc"] and
              got.get("acc_norm") == logged[step]["eval_piqa_acc_norm"],
              f"step {step}: the same as tlrun evaluate on that step's checkpoint ({got})")
    r = train(os.path.join(work, "eval-bad"), "--data", DATA, "--set",
              merge_sets(BASE, f"steps=2,eval_every=1,eval_tasks=piqa={os.path.join(work, 'none.jsonl')}"))
    check(r.returncode != 0 and "none.jsonl" in r.stderr and not os.path.exists(os.path.join(work, "eval-bad")),
          f"a missing task file is refused before the run directory is made ({r.stderr.strip()[-200:]})")


def test_bad_input(work, rng):
    a = source("bad-a", rng, 0, 200, 3000)
    target = os.path.join(work, "bad-run")
    cases = [
        (["--data", f"x={a}:0"], "weights must be > 0"),
        (["--data", f"x={a}:1", "--data", f"x={a}:2"], "name 'x' given twice"),
        (["--data", a, "--data", a], "each is NAME=DIR:WEIGHT"),
        (["--data", f"x={a}:1", "--data", f"y={os.path.join(work, 'nowhere')}:1"], "nowhere"),
        (["--data", f"x={a}:1", "--data", f"y={a}:0.00001"], "below the smallest share"),
        (["--data", a, "--set", "schedule=linear"], "key 'schedule' must be one of cosine|wsd|constant"),
        (["--data", a, "--set", "schedule=wsd,decay_steps=50,steps=20"], "key 'decay_steps' (50) exceeds"),
        (["--data", a, "--set", "decay_shape=exp"], "key 'decay_shape' must be one of"),
        (["--data", a, "--resume-optimizer"], "--resume-optimizer needs --init-from"),
        (["--data", a, "--init-from", os.path.join(work, "nowhere"), "--resume-optimizer"], "nowhere"),
        (["--data", a, "--set", "eval_every=5"], "key 'eval_every' needs key 'eval_tasks'"),
        ([], "no training data"),
    ]
    for args, pattern in cases:
        before = tree_state(target)
        r = train(target, *args, "--set", "batch_tokens=64,steps=20") if "--set" not in args else train(target, *args)
        check(r.returncode in (1, 2) and pattern in r.stderr and "Traceback" not in r.stderr and
              tree_state(target) == before, f"{' '.join(args)[-80:]}: '{pattern}' ({r.stderr.strip()[-200:]})")


TESTS = {"mixture": test_mixture, "resume": test_resume, "schedule": test_schedule, "phases": test_phases,
         "samples": test_samples, "evaluate": test_evaluate, "bad-input": test_bad_input}


def setup(args, work, rng):
    global ARGS, WORK, TLX, DATA
    ARGS, WORK = args, work
    os.environ.setdefault("TLC_CACHE_DIR", os.path.join(work, "cache"))
    DATA = os.path.join(work, "data")
    prepare_fortunes(args.tlrun, DATA, VOCAB)
    TLX, _ = compile_model(args.tlc, work, overrides=MODEL_SETS)
    return ()


if __name__ == "__main__":
    sys.exit(run_groups(__doc__, TESTS, setup))
