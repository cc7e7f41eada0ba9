#!/usr/bin/env python3
"""`tlrun train` end to end on a tiny compiled TinyLlama (CPU device):

  help       --help documents every option and configuration key with its default
  learn      on a learnable synthetic corpus the loss falls far below ln(vocab)
  resume     2k steps straight == k steps + resume for k, bitwise (losses and weights),
             with shuffling, accumulation and validation
  signals    SIGTERM mid-run writes a checkpoint and exits 143; resuming continues the
             trajectory bitwise; SIGKILL at random moments while checkpoints are written
             (repeated) always leaves `latest` naming a loadable checkpoint
  nonfinite  non-finite losses skip their updates; K in a row stop the run with a checkpoint
  bad-input  each bad input exits non-zero with a message naming the file or key and
             modifies nothing: shards (missing, truncated, foreign, ids beyond the
             vocabulary, tokenizer larger than the model), checkpoints (corrupt, partial,
             incompatible), configuration (unknown keys, out-of-range values), an
             unwritable run directory, a full disk while saving
  plot       tlrun plot draws train/validation loss and the learning rate as SVG; TLC_PROFILE=1
             lists the optimizer's kernels; final_checkpoint=false writes no final checkpoint

Fresh random data every run (the seed is printed). Run with /usr/bin/python3.
"""
import math
import os
import random
import re
import resource
import signal
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trainlib import (TINY, check, compile_model, latest, markov_table, markov_tokens, merge_sets, metrics,  # noqa: E402
                      read_safetensors, run_groups, tree_state, write_shard)

def tlrun(args, *a, **kw):
    return subprocess.run([ARGS.tlrun] + args, capture_output=True, text=True, *a, **kw)


def make_data(dir, rng, train_tokens=6000, val_tokens=1200, vocab=64, shards=2):
    os.makedirs(dir, exist_ok=True)
    table = markov_table(rng, vocab)
    for i in range(shards):
        write_shard(os.path.join(dir, f"syn_train_{i:03d}.bin"), markov_tokens(rng, table, train_tokens))
    write_shard(os.path.join(dir, "syn_val_000.bin"), markov_tokens(rng, table, val_tokens))
    return dir


BASE = "batch_tokens=128,warmup_steps=3,lr=1e-2,min_lr=1e-3,log_every=1,val_every=4,val_batches=3"


def test_help(work, rng):
    out = tlrun(["train", "--help"])
    check(out.returncode == 0, "tlrun train --help exits 0")
    for option in ["--data", "--out", "--config", "--set", "--steps", "--resume", "--device", "--init-from"]:
        check(option in out.stdout, f"--help documents {option}")
    for key, default in [("steps", "1430512"), ("batch_tokens", "2097152"), ("lr", "0.0004"), ("min_lr", "4e-05"),
                         ("warmup_steps", "2000"), ("beta1", "0.9"), ("beta2", "0.95"), ("eps", "1e-08"),
                         ("weight_decay", "0.1"), ("grad_clip", "1"), ("seed", "1337"), ("shuffle", "true"),
                         ("log_every", "10"), ("val_every", "1000"), ("val_batches", "20"),
                         ("checkpoint_every", "1000"), ("keep_checkpoints", "3")]:
        check(re.search(rf"^  {key} = {re.escape(default)} ", out.stdout, re.M) is not None,
              f"--help documents key {key} with default {default}")
    check(tlrun(["plot", "--help"]).returncode == 0, "tlrun plot --help exits 0")


def test_learn(work, rng):
    tlx, info = MODEL
    vocab = info["config"]["vocab"]
    data = make_data(os.path.join(work, "learn-data"), rng, train_tokens=20000, val_tokens=2000)
    out = tlrun(["train", tlx, "--data", data, "--out", os.path.join(work, "learn"), "--set",
                 "steps=60,batch_tokens=128,warmup_steps=5,lr=1e-2,min_lr=1e-3,log_every=10,val_every=20,val_batches=10"])
    check(out.returncode == 0, f"60 steps train ({out.stderr.strip()[-300:]})")
    m = metrics(os.path.join(work, "learn"))
    vals = [e["val_loss"] for e in m if "val_loss" in e]
    print(f"  ln(vocab) = {math.log(vocab):.3f}, first loss {m[0]['loss']:.3f}, val losses {[round(v, 3) for v in vals]}")
    check(abs(m[0]["loss"] - math.log(vocab)) < 0.5, "the first loss is near ln(vocab)")
    check(len(vals) == 3 and vals[-1] < 0.4 * math.log(vocab), "the final validation loss is far below ln(vocab)")
    check(vals[-1] < 1.2, "the final validation loss approaches the corpus entropy ln 2")


def test_resume(work, rng):
    tlx, _ = MODEL
    data = make_data(os.path.join(work, "resume-data"), rng)
    straight, part = os.path.join(work, "straight"), os.path.join(work, "part")
    sets = merge_sets(BASE, "steps=16,checkpoint_every=8,shuffle=true")
    out = tlrun(["train", tlx, "--data", data, "--out", straight, "--set", sets])
    check(out.returncode == 0, f"16 steps straight ({out.stderr.strip()[-300:]})")
    # The first half alone (as an interrupted run would have left it), then resumed.
    out = tlrun(["train", tlx, "--data", data, "--out", part, "--set", merge_sets(sets, "checkpoint_every=0"), "--steps", "16",
                 "--resume=" + os.path.join(straight, "checkpoints", "8")])
    check(out.returncode == 0 and "resuming from" in out.stdout, f"resume from step 8 ({out.stderr.strip()[-300:]})")
    a, b = metrics(straight), metrics(part)
    check([e["loss"] for e in a[8:]] == [e["loss"] for e in b], "losses of steps 9..16 are bitwise equal")
    check([e.get("val_loss") for e in a[8:]] == [e.get("val_loss") for e in b], "validation losses are bitwise equal")
    check([e["grad_norm"] for e in a[8:]] == [e["grad_norm"] for e in b], "gradient norms are bitwise equal")
    for f in ["model.safetensors", "optimizer.safetensors"]:
        with open(os.path.join(straight, "checkpoints", "16", f), "rb") as x, \
                open(os.path.join(part, "checkpoints", "16", f), "rb") as y:
            check(x.read() == y.read(), f"final {f} is bitwise equal")
    w = read_safetensors(os.path.join(straight, "checkpoints", "16", "model.safetensors"))
    check(set(w) == {p["name"] for p in MODEL[1]["parameters"]}, "model.safetensors holds every parameter by its HF name")
    # Resuming the finished run with more steps continues from its latest.
    out = tlrun(["train", tlx, "--data", data, "--out", part, "--resume", "--steps", "18"])
    check(out.returncode == 0 and os.path.basename(latest(part)) == "18", "--resume (latest) with --steps 18 continues")


def test_nonfinite(work, rng):
    tlx, _ = MODEL
    data = make_data(os.path.join(work, "nonfinite-data"), rng)
    run_dir = os.path.join(work, "nonfinite")
    # An absurd learning rate blows the weights up after the first update.
    out = tlrun(["train", tlx, "--data", data, "--out", run_dir, "--set",
                 merge_sets(BASE, "steps=50,warmup_steps=0,lr=1e30,min_lr=0,grad_clip=0,nonfinite_limit=3,checkpoint_every=0")])
    m = metrics(run_dir)
    skipped = [e["step"] for e in m if e.get("skipped")]
    print(f"  {out.stderr.strip()}")
    check(out.returncode == 1, f"the run stops with exit 1 (got {out.returncode})")
    check(skipped == [2, 3, 4] and m[-1]["step"] == 4, f"steps 2-4 were skipped, then the run stopped ({skipped})")
    check("3 steps in a row had a non-finite loss or gradient norm" in out.stderr and "checkpoints/4" in out.stderr,
          "the message says why and names the checkpoint")
    w = read_safetensors(os.path.join(latest(run_dir), "model.safetensors"))
    check(all(np.isfinite(v).all() for v in w.values()), "the checkpoint holds the last good (finite) weights")


def wait_for_step(run_dir, step, proc, timeout=60):
    path = os.path.join(run_dir, "metrics.jsonl")
    end = time.time() + timeout
    while time.time() < end and proc.poll() is None:
        try:
            with open(path) as f:
                lines = f.read().splitlines()
            if len(lines) >= step:
                return True
        except FileNotFoundError:
            pass
        time.sleep(0.005)
    return False


def test_signals(work, rng):
    tlx, _ = MODEL
    data = make_data(os.path.join(work, "signal-data"), rng)
    sets = merge_sets(BASE, "steps=400,checkpoint_every=0,val_every=50")
    straight, stopped = os.path.join(work, "sig-straight"), os.path.join(work, "sig-stopped")
    out = tlrun(["train", tlx, "--data", data, "--out", straight, "--set", sets])
    check(out.returncode == 0, "400 steps straight")
    proc = subprocess.Popen([ARGS.tlrun, "train", tlx, "--data", data, "--out", stopped, "--set", sets],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    check(wait_for_step(stopped, 20, proc), "the run reaches step 20")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate()
    step = int(os.path.basename(latest(stopped)))
    print(f"  SIGTERM after step {step}: {err.strip()}")
    check(proc.returncode == 128 + signal.SIGTERM, f"SIGTERM exits {128 + signal.SIGTERM} (got {proc.returncode})")
    check("terminated (SIGTERM)" in err and "--resume" in err, "SIGTERM prints what happened and how to continue")
    check(0 <= err.find("stopping after the current step") < err.find("terminated (SIGTERM)"),
          "SIGTERM is acknowledged at once, before the step ends")
    check(20 <= step < 400 and len(metrics(stopped)) == step, "the checkpoint is of the last finished step")
    out = tlrun(["train", tlx, "--data", data, "--out", stopped, "--resume"])
    check(out.returncode == 0, f"resume after SIGTERM ({out.stderr.strip()[-300:]})")
    check([e["loss"] for e in metrics(stopped)] == [e["loss"] for e in metrics(straight)],
          "the resumed trajectory equals the uninterrupted one, bitwise")
    with open(os.path.join(straight, "checkpoints", "400", "model.safetensors"), "rb") as x, \
            open(os.path.join(stopped, "checkpoints", "400", "model.safetensors"), "rb") as y:
        check(x.read() == y.read(), "final weights equal the uninterrupted run's, bitwise")

    # SIGINT (Ctrl-C) takes the same path.
    interrupted = os.path.join(work, "sig-int")
    proc = subprocess.Popen([ARGS.tlrun, "train", tlx, "--data", data, "--out", interrupted, "--set", sets],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for_step(interrupted, 3, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate()
    check(proc.returncode == 128 + signal.SIGINT and "interrupted (SIGINT)" in err and
          int(os.path.basename(latest(interrupted))) == len(metrics(interrupted)),
          f"SIGINT exits {128 + signal.SIGINT} with a checkpoint of the last step (got {proc.returncode})")

    # SIGKILL at random moments of a run that checkpoints every step.
    killed = os.path.join(work, "killed")
    sets = merge_sets(BASE, "steps=100000,checkpoint_every=1,keep_checkpoints=2,val_every=0")
    survived = 0
    for attempt in range(6):
        args = ["train", tlx, "--data", data, "--out", killed, "--set", sets]
        if attempt:
            args.append("--resume")
        proc = subprocess.Popen([ARGS.tlrun] + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if attempt == 0:
            # Under a loaded CI machine start-up can outlast any fixed delay: the
            # first kill waits for the first checkpoint, then lands at a random moment.
            end = time.time() + 60
            while (time.time() < end and proc.poll() is None and
                   not os.path.exists(os.path.join(killed, "checkpoints", "latest"))):
                time.sleep(0.005)
        time.sleep(random.uniform(0.3, 1.2))
        proc.kill()
        _, err = proc.communicate()
        if not os.path.exists(os.path.join(killed, "checkpoints", "latest")):
            check(False, f"kill {attempt}: no checkpoint yet ({err.strip()[-300:]})")
            continue
        ckpt = latest(killed)
        step = int(os.path.basename(ckpt))
        # Loadable: a resume verifies every checksum and trains one more step.
        out = tlrun(["train", tlx, "--data", data, "--out", killed, "--resume", "--set", sets, "--steps", str(step + 1)])
        ok = out.returncode == 0 and os.path.basename(latest(killed)) == str(step + 1)
        survived += ok
        print(f"  SIGKILL {attempt}: latest was step {step}: {'loadable' if ok else out.stderr.strip()}")
    check(survived == 6, "after every SIGKILL the latest checkpoint is complete and loadable")


def expect_failure(what, args, pattern, watched, code=None):
    before = tree_state(*watched)
    out = tlrun(args)
    msg = out.stderr.strip()
    good = out.returncode != 0 and (code is None or out.returncode == code) and re.search(pattern, msg) is not None
    check(good, f"{what}: exit {out.returncode}, message: {msg[:220]}")
    check(tree_state(*watched) == before, f"{what}: nothing existing modified")


def test_bad_input(work, rng):
    tlx, info = MODEL
    data = make_data(os.path.join(work, "bad-data"), rng)
    run_dir = os.path.join(work, "bad-run")
    sets = merge_sets(BASE, "steps=6,checkpoint_every=3")
    out = tlrun(["train", tlx, "--data", data, "--out", run_dir, "--set", sets])
    check(out.returncode == 0, "a good run to damage")
    fresh = os.path.join(work, "fresh")
    watched = [data, run_dir, fresh]

    # Data.
    expect_failure("missing data directory", ["train", tlx, "--data", data + "-nope", "--out", fresh, "--set", sets],
                   r"bad-data-nope: cannot open the data directory", watched)
    empty = os.path.join(work, "empty-data")
    os.makedirs(empty)
    expect_failure("no training shards", ["train", tlx, "--data", empty, "--out", fresh], r"empty-data: holds no training shards", watched)

    def shard_case(what, tokens, raw, pattern, manifest=None):
        d = os.path.join(work, what.replace(" ", "-"))
        os.makedirs(d)
        path = os.path.join(d, "x_train_000.bin")
        write_shard(path, tokens)
        if raw is not None:
            raw(path)
        if manifest:
            with open(os.path.join(d, "manifest.json"), "w") as f:
                f.write(manifest)
        expect_failure(what, ["train", tlx, "--data", d, "--out", fresh, "--set", sets], pattern.replace("FILE", re.escape(path)),
                       watched + [d])

    good = markov_tokens(rng, markov_table(rng, 64), 3000)
    shard_case("truncated shard", good, lambda p: os.truncate(p, 1024 + 1000), r"FILE: truncated: the header announces 3000 tokens")
    shard_case("foreign shard", good, lambda p: open(p, "wb").write(os.urandom(5000)), r"FILE: bad magic .*not an llm.c token shard")
    bad = good.copy()
    bad[1234] = 64
    shard_case("ids beyond the vocabulary", bad, None, r"FILE: token 1234 is id 64, beyond the model's vocabulary of 64")
    d = "tokenizer larger than the model"
    shard_case(d, good, None, r"manifest.json: the tokenizer's vocab_size 32000 exceeds the model's vocabulary of 64",
               manifest='{"vocab_size": 32000}')
    both = os.path.join(work, "both-data")
    os.makedirs(both)
    write_shard(os.path.join(both, "x_train_and_val.bin"), good)
    expect_failure("a shard named both train and val", ["train", tlx, "--data", both, "--out", fresh, "--set", sets],
                   r"x_train_and_val.bin: the name contains both 'train' and 'val'", watched + [both])
    short_val = os.path.join(work, "short-val-data")
    os.makedirs(short_val)
    write_shard(os.path.join(short_val, "x_train_000.bin"), good)
    write_shard(os.path.join(short_val, "x_val_000.bin"), good[:5])
    expect_failure("validation shorter than a micro-batch", ["train", tlx, "--data", short_val, "--out", fresh, "--set", sets],
                   r"short-val-data: the validation shards hold no full micro-batch of B\*T\+1 = 33 tokens", watched + [short_val])

    # Checkpoints.
    ckpt = os.path.join(run_dir, "checkpoints", "6")
    resume = ["train", tlx, "--data", data, "--out", run_dir, "--resume", "--steps", "9"]
    model = os.path.join(ckpt, "model.safetensors")
    original = open(model, "rb").read()
    damaged = bytearray(original)
    damaged[-7] ^= 0x40
    open(model, "wb").write(bytes(damaged))
    expect_failure("corrupt checkpoint", resume, re.escape(model) + r": checksum mismatch", watched)
    open(model, "wb").write(original)
    opt = os.path.join(ckpt, "optimizer.safetensors")
    os.rename(opt, opt + ".away")
    expect_failure("partial checkpoint", resume, re.escape(opt) + r": missing: the checkpoint is incomplete", watched)
    os.rename(opt + ".away", opt)
    other_tlx, _ = compile_model(ARGS.tlc, work, TINY.replace("ffn=96", "ffn=80"), name="other")
    expect_failure("incompatible checkpoint", ["train", other_tlx, "--data", data, "--out", run_dir, "--resume"],
                   r"state.json: incompatible with this artifact: the checkpoint was written for 'model.layers.0.mlp.gate_proj.weight' of shape \[96, 64\], the model's is \[80, 64\]", watched)
    expect_failure("resume with another seed", resume + ["--set", "seed=5"], r"key 'seed' cannot change on resume", watched, 2)
    expect_failure("resume with nothing to train", ["train", tlx, "--data", data, "--out", run_dir, "--resume=" + ckpt, "--steps", "5"],
                   r"nothing to train: .*checkpoints/6 is at step 6 and the run ends at step 5 \(give --steps N with N > 6",
                   watched, 2)
    expect_failure("resume without a checkpoint", ["train", tlx, "--data", data, "--out", fresh, "--resume"],
                   r"fresh: has no checkpoint to resume", watched)
    expect_failure("a fresh run over an existing one", ["train", tlx, "--data", data, "--out", run_dir, "--set", sets],
                   r"bad-run: already holds a run", watched)

    # Configuration.
    expect_failure("unknown --set key", ["train", tlx, "--data", data, "--out", fresh, "--set", "steps=3,learning_rate=1"],
                   r"--set: unknown key 'learning_rate'", watched, 2)
    expect_failure("out-of-range value", ["train", tlx, "--data", data, "--out", fresh, "--set", "beta2=1.5"],
                   r"key 'beta2' must be \[0, 1\)", watched, 2)
    expect_failure("wrong type", ["train", tlx, "--data", data, "--out", fresh, "--set", "val_every=often"],
                   r"key 'val_every' has an invalid value 'often'", watched, 2)
    toml = os.path.join(work, "bad.toml")
    with open(toml, "w") as f:
        f.write("steps = 10\nwarmup = 3\n")
    expect_failure("unknown key in a TOML file", ["train", tlx, "--data", data, "--out", fresh, "--config", toml],
                   re.escape(toml) + r":2: unknown key 'warmup'", watched, 2)
    js = os.path.join(work, "bad.json")
    with open(js, "w") as f:
        f.write('{"steps": 10, "lr": -1}')
    expect_failure("out-of-range value in a JSON file", ["train", tlx, "--data", data, "--out", fresh, "--config", js],
                   re.escape(js) + r": key 'lr' must be >= 0", watched, 2)
    def config_case(what, name, content, pattern):
        path = os.path.join(work, name)
        with open(path, "wb") as f:
            f.write(content)
        expect_failure(what, ["train", tlx, "--data", data, "--out", fresh, "--config", path, "--set", "steps=3"],
                       re.escape(path) + pattern, watched, 2)
    config_case("duplicate JSON key", "dup.json", b'{"lr": 0.5, "lr": 0.001}', r": key 'lr' given twice")
    config_case("a key at the top and under train", "both.json", b'{"train": {"lr": 0.5}, "lr": 0.001}',
                r": key 'lr' given twice \(as '(train\.)?lr' and '(train\.)?lr'\)")
    config_case("a TOML key at the top and under [train]", "both.toml", b"lr = 0.5\n[train]\nlr = 0.001\n",
                r":3: key 'lr' given twice \(as 'lr' and 'train.lr'\)")
    config_case("a TOML table twice", "twice.toml", b"[train]\nlr = 0.5\n[train]\nwarmup_steps = 1\n",
                r":3: table \[train\] given twice \(first on line 1\)")
    config_case("a binary config file", "binary.toml", b"TLX\x01\x02 = 3\n", r":1: control byte 0x01: given binary data")
    config_case("a UTF-8 byte order mark", "bom.toml", b"\xef\xbb\xbfwarmup = 3\n", r":1: unknown key 'warmup'")
    expect_failure("a directory as config", ["train", tlx, "--data", data, "--out", fresh, "--config", data, "--set", "steps=3"],
                   re.escape(data) + r": given a directory, expected a config file", watched, 2)
    expect_failure("/dev/zero as config", ["train", tlx, "--data", data, "--out", fresh, "--config", "/dev/zero"],
                   r"/dev/zero: not a regular file", watched, 2)
    expect_failure("--steps 0", ["train", tlx, "--data", data, "--out", fresh, "--steps", "0"],
                   r"--steps: must be in 1..9223372036854775807, got 0", watched, 2)
    expect_failure("batch_tokens not a multiple of B*T", ["train", tlx, "--data", data, "--out", fresh, "--set", "batch_tokens=100"],
                   r"key 'batch_tokens' \(100\) must be a multiple of the micro-batch's 2x16 = 32 tokens", watched, 2)

    # The run directory and the disk.
    blocker = os.path.join(work, "a-file")
    open(blocker, "w").write("not a directory")
    expect_failure("unwritable run directory", ["train", tlx, "--data", data, "--out", blocker + "/run", "--set", sets],
                   re.escape(blocker) + r"/run: cannot create the run directory", watched + [blocker])

    def small_disk():  # a full disk, simulated: writes beyond 100 kB fail with EFBIG
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, resource.RLIM_INFINITY))
    before = tree_state(*watched)
    out = tlrun(resume, preexec_fn=small_disk)
    msg = out.stderr.strip()
    check(out.returncode == 1 and re.search(r"saving checkpoint .*checkpoints/9 failed: .*model.safetensors.*File too large", msg)
          is not None, f"full disk while saving: exit {out.returncode}, message: {msg[:250]}")
    after = tree_state(*watched)
    ckpts = {k: v for k, v in before.items() if "/checkpoints/" in k}
    check(all(after.get(k) == v for k, v in ckpts.items()) and not any(
        "/checkpoints/" in k and k not in ckpts for k in after), "full disk: every existing checkpoint and latest unchanged")
    out = tlrun(resume)
    check(out.returncode == 0, "after the full disk, the run resumes from its last checkpoint")


def test_plot(work, rng):
    tlx, _ = MODEL
    data = make_data(os.path.join(work, "plot-data"), rng)
    run_dir = os.path.join(work, "plot-run")
    out = tlrun(["train", tlx, "--data", data, "--out", run_dir, "--set",
                 merge_sets(BASE, "steps=12,checkpoint_every=5,final_checkpoint=false")],
                env=dict(os.environ, TLC_PROFILE="1"))
    check(out.returncode == 0, "a run to plot")
    check(sorted(os.listdir(os.path.join(run_dir, "checkpoints"))) == ["10", "5", "latest"]
          and "no final checkpoint (final_checkpoint=false)" in out.stdout,
          "final_checkpoint=false: the periodic checkpoints only, and the run says so")
    # TLC_PROFILE=1 times the optimizer's kernels too: one call of each per step.
    for kind in ["zero_grads", "opt_sumsq", "opt_adamw"]:
        check(re.search(rf"^  {kind} +[0-9.]+ s +[0-9.]+%  \(12 calls\)$", out.stderr, re.M) is not None,
              f"TLC_PROFILE=1 lists {kind} with 12 calls")
    check("profile of train_step" in out.stderr and "profile of the optimizer" in out.stderr,
          "TLC_PROFILE=1 prints the training step's and the optimizer's tables")
    out = tlrun(["plot", run_dir])
    svg_path = os.path.join(run_dir, "plot.svg")
    check(out.returncode == 0 and os.path.exists(svg_path), "tlrun plot writes RUN_DIR/plot.svg")
    svg = open(svg_path).read()
    check(svg.startswith("<?xml") and svg.rstrip().endswith("</svg>"), "a complete SVG document")
    check(svg.count("<polyline") == 3 and all(s in svg for s in ["train loss", "validation loss", "learning rate"]),
          "train loss, validation loss and learning rate are drawn")
    out = tlrun(["plot", os.path.join(work, "nowhere")])
    check(out.returncode == 1 and "nowhere/metrics.jsonl: cannot read" in out.stderr, "plot of a missing run names the file")


TESTS = {"help": test_help, "learn": test_learn, "resume": test_resume, "signals": test_signals,
         "nonfinite": test_nonfinite, "bad-input": test_bad_input, "plot": test_plot}


def setup(args, work, rng):
    global ARGS, MODEL
    ARGS = args
    os.environ.setdefault("TLC_CACHE_DIR", os.path.join(work, "cache"))
    MODEL = compile_model(ARGS.tlc, work)
    return ()


if __name__ == "__main__":
    sys.exit(run_groups(__doc__, TESTS, setup))
