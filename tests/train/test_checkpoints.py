#!/usr/bin/env python3
"""Checkpoint references and checkpoint verification, end to end (CPU device):

  refs     every reference form (RUN_DIR, RUN_DIR/, RUN_DIR/checkpoints, the file
           checkpoints/latest, checkpoints/<step>, RUN_DIR:STEP, RUN_DIR:latest) names the
           same checkpoint for train --resume, train --init-from, generate, export and eval:
           eval's loss and generate's greedy ids equal those of the explicit weights file;
           bad references (no such step, a data directory, nothing) fail naming what they
           found and what is accepted, writing nothing
  damaged  a truncated or missing optimizer file: export, generate, eval and --init-from
           work and warn naming the file; --resume refuses naming it. A flipped byte in
           model.safetensors, a corrupt state.json or a `latest` naming a pruned step: every
           reader refuses naming the file, and nothing is written
  list     tlrun checkpoints RUN_DIR: steps, losses (metrics.jsonl's), sizes, latest; --json;
           a truncation found by sizes, a flipped byte only by --verify; exit 1 when damaged
  sharded  checkpoint_weights=sharded on one rank (one weight range file, no model.safetensors):
           eval, evaluate, generate, export, --init-from [--resume-optimizer] and --resume give
           exactly what the same run saved in full gives; a damaged range file is refused by each
           naming it, writing nothing, and a damaged optimizer file only warned about

Fresh random training seeds every run (the seed is printed). Run with /usr/bin/python3.
"""
import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trainlib import (check, check_damaged_file_refused, checkpoint_weights, compile_model, latest,  # noqa: E402
                      prepare_fortunes, metrics, read_safetensors, run_groups, tree_state)

VOCAB = 400
MODEL_SETS = f"layers=2,dim=64,heads=4,kv_heads=2,ffn=96,vocab={VOCAB},seq=16,micro_batch=2"
TRAIN_SETS = "batch_tokens=64,warmup_steps=2,lr=1e-2,min_lr=1e-3,log_every=1,val_every=0,keep_checkpoints=0"


def tlrun(*args):
    return subprocess.run([ARGS.tlrun, *args], capture_output=True, text=True)


def train(out, *extra, steps=6):
    return tlrun("train", TLX, "--data", DATA, "--out", out, "--set", TRAIN_SETS, "--steps", str(steps), *extra)


def eval_loss(weights):
    r = tlrun("eval", TLX, "--weights", weights, "--tokens", VAL, "--json")
    return (json.loads(r.stdout)["loss"] if r.returncode == 0 else None), r


def greedy(source, *extra):
    r = tlrun("generate", source, "--prompt", "The cat", "--max-tokens", "6", "--temperature", "0", "--json", *extra)
    return (json.loads(r.stdout)["ids"] if r.returncode == 0 else None), r


def make_run(name, rng):
    """Six steps with checkpoints at 2, 4 and 6, from a fresh random seed."""
    run = os.path.join(WORK, name)
    sets = TRAIN_SETS + f",checkpoint_every=2,seed={int(rng.integers(1, 2**31))}"
    r = tlrun("train", TLX, "--data", DATA, "--out", run, "--set", sets, "--steps", "6")
    if r.returncode != 0:
        sys.exit(f"training {name} failed:\n{r.stdout}\n{r.stderr}")
    return run


def test_refs(work, rng):
    run = make_run("refs-run", rng)
    ck = lambda step: os.path.join(run, "checkpoints", str(step))  # noqa: E731
    forms = [(run, 6), (run + "/", 6), (os.path.join(run, "checkpoints"), 6),
             (os.path.join(run, "checkpoints", "latest"), 6), (ck(4), 4), (ck(4) + "/", 4),
             (f"{run}:4", 4), (f"{run}:2", 2), (f"{run}:latest", 6)]
    losses = {step: eval_loss(os.path.join(ck(step), "model.safetensors"))[0] for step in (2, 4, 6)}
    check(len(set(losses.values())) == 3, f"the checkpoints of steps 2, 4, 6 differ (eval losses {losses})")
    ids = {step: greedy(os.path.join(ck(step), "model.safetensors"), "--model", TLX,
                        "--tokenizer", os.path.join(DATA, "tokenizer.model"))[0] for step in (4, 6)}
    check(all(ids.values()), "generate from explicit weights files")
    for i, (ref, step) in enumerate(forms):
        loss, r = eval_loss(ref)
        check(loss == losses[step], f"eval --weights {ref}: the loss of step {step}'s weights ({r.stderr.strip()[-200:]})")
        if step in ids:
            got, r = greedy(ref)
            check(got == ids[step], f"generate {ref}: the ids of step {step}'s weights ({r.stderr.strip()[-200:]})")
        out = os.path.join(work, f"refs-hf-{i}")
        r = tlrun("export", ref, "--hf", out)
        check(r.returncode == 0 and f"exported {ck(step)} (step {step}," in r.stdout,
              f"export {ref}: step {step} ({(r.stdout + r.stderr).strip()[-200:]})")
        resumed = os.path.join(work, f"refs-resume-{i}")
        r = train(resumed, f"--resume={ref}", steps=7)
        check(r.returncode == 0 and f"resuming from {ck(step)} (step {step})" in r.stdout,
              f"train --resume={ref}: step {step} ({(r.stdout + r.stderr).strip()[-200:]})")
        fresh = os.path.join(work, f"refs-init-{i}")
        r = train(fresh, "--init-from", ref, steps=1)
        check(r.returncode == 0 and f"initial weights from {ck(step)}/model.safetensors" in r.stdout,
              f"train --init-from {ref}: step {step}'s weights ({(r.stdout + r.stderr).strip()[-200:]})")
    # The path a finished run prints, given back as a user would copy it.
    r = train(os.path.join(work, "refs-resume-latest"), "--resume", os.path.join(run, "checkpoints", "latest"), steps=7)
    check(r.returncode == 0, "--resume RUN_DIR/checkpoints/latest (the path the default job prints)")

    # Bad references: what was found and what is accepted; nothing written.
    accepted = "checkpoint reference"
    for ref, found in [(f"{run}:5", "no complete checkpoint of step 5"), (f"{run}:5", "steps 2, 4, 6"),
                       (DATA, "neither state.json nor checkpoints/latest"), (DATA, accepted),
                       (os.path.join(work, "nowhere"), "does not exist"),
                       (os.path.join(work, "nowhere") + ":3", "does not exist (the run directory of")]:
        out, target = os.path.join(work, "refs-bad-hf"), os.path.join(work, "refs-bad-run")
        before = tree_state(run, out, target)
        for what, r in [("export", tlrun("export", ref, "--hf", out)),
                        ("train --resume", train(target, f"--resume={ref}", steps=7)),
                        ("eval", eval_loss(ref)[1])]:
            check(r.returncode != 0 and found in r.stderr, f"{what} {os.path.basename(ref)}: says '{found}' "
                  f"({r.stderr.strip()[-200:]})")
        if ref != DATA:  # a data directory is a legitimate --init-from source: Hugging Face weights are looked for
            r = train(target, "--init-from", ref, steps=1)
            check(r.returncode != 0 and found in r.stderr, f"--init-from {os.path.basename(ref)}: says '{found}'")
        r = greedy(ref)[1]
        check(r.returncode != 0 and found in r.stderr,
              f"generate {os.path.basename(ref)} fails naming it ({r.stderr.strip()[-200:]})")
        check(tree_state(run, out, target) == before, f"bad reference {os.path.basename(ref)}: nothing written")


def damage_cases(run):
    """(name, apply) pairs; each applies one kind of damage to a fresh copy of `run`."""
    latest = lambda r: os.path.join(r, "checkpoints", "6")  # noqa: E731

    def truncate(r):
        os.truncate(os.path.join(latest(r), "optimizer.safetensors"), 100)

    def remove(r):
        os.remove(os.path.join(latest(r), "optimizer.safetensors"))

    def flip(r):
        path = os.path.join(latest(r), "model.safetensors")
        with open(path, "r+b") as f:
            f.seek(-3, os.SEEK_END)
            b = f.read(1)
            f.seek(-3, os.SEEK_END)
            f.write(bytes([b[0] ^ 0x41]))

    def corrupt_state(r):
        with open(os.path.join(latest(r), "state.json"), "w") as f:
            f.write('{"format": "tlc-chec')

    def pruned(r):
        shutil.rmtree(latest(r))
    return [("truncated optimizer", truncate), ("missing optimizer", remove), ("flipped model byte", flip),
            ("corrupt state.json", corrupt_state), ("latest names a pruned step", pruned)]


def text_file(work):
    path = os.path.join(work, "evaluate.txt")
    with open(path, "w") as f:
        f.write("A small text to score: the checkpoint must be read before it is.\n")
    return path


def test_damaged(work, rng):
    base = make_run("damaged-base", rng)
    # Intact, a checkpoint's weights file evaluates with the run's model and tokenizer.
    r = tlrun("evaluate", os.path.join(latest(base), "model.safetensors"), "--text", text_file(work))
    check(r.returncode == 0 and "perplexity" in r.stdout.lower(),
          f"evaluate CHECKPOINT/model.safetensors finds the run's model and tokenizer ({r.stderr.strip()[-300:]})")
    for i, (name, damage) in enumerate(damage_cases(base)):
        run = os.path.join(work, f"damaged-{i}")
        shutil.copytree(base, run)
        damage(run)
        optimizer = os.path.join(run, "checkpoints", "6", "optimizer.safetensors")
        model = os.path.join(run, "checkpoints", "6", "model.safetensors")
        state = os.path.join(run, "checkpoints", "6", "state.json")
        hf, target = os.path.join(work, f"damaged-hf-{i}"), os.path.join(work, f"damaged-init-{i}")
        before = tree_state(run)
        readers = [("export", lambda: tlrun("export", run, "--hf", hf)),
                   ("generate", lambda: greedy(run)[1]),
                   ("eval", lambda: eval_loss(run)[1]),
                   ("--init-from", lambda: train(target, "--init-from", run, steps=1))]
        if name in ("truncated optimizer", "missing optimizer"):
            why = "has 100 bytes" if name.startswith("truncated") else "missing: the checkpoint is incomplete"
            for what, read in readers:
                r = read()
                warned = [line for line in r.stderr.splitlines() if line.startswith("warning: " + optimizer)]
                check(r.returncode == 0 and len(warned) == 1 and why in warned[0] and "cannot be resumed" in warned[0],
                      f"{name}: {what} works and warns once naming the file ({r.stderr.strip()[-300:]})")
            r = train(os.path.join(work, f"damaged-resume-{i}"), f"--resume={run}", steps=7)
            check(r.returncode == 1 and optimizer + ": " + why.split(":")[0] in r.stderr and
                  "tlrun checkpoints" in r.stderr, f"{name}: --resume refuses naming the file ({r.stderr.strip()[-300:]})")
            continue
        expect = {"flipped model byte": model + ": checksum mismatch", "corrupt state.json": state + ": corrupt",
                  "latest names a pruned step": "latest: names " + os.path.join(run, "checkpoints", "6")}[name]
        refusing = readers + [("--resume", lambda: train(target, f"--resume={run}", steps=7))]
        if os.path.exists(model):  # a checkpoint's weights named as a file are verified too
            refusing.append(("evaluate CHECKPOINT/model.safetensors",
                             lambda: tlrun("evaluate", model, "--text", text_file(work))))
        for what, read in refusing:
            r = read()
            check(r.returncode == 1 and expect in r.stderr, f"{name}: {what} refuses with '{expect}' "
                  f"({r.stderr.strip()[-300:]})")
        check(tree_state(run) == before and not os.path.exists(hf) and not os.path.exists(target),
              f"{name}: nothing written or changed")


def test_list(work, rng):
    run = make_run("list-run", rng)
    r = tlrun("checkpoints", run)
    check(r.returncode == 0, f"tlrun checkpoints exits 0 on an intact run ({r.stderr.strip()})")
    logged = {e["step"]: e["loss"] for e in metrics(run)}
    for step in (2, 4, 6):
        row = next((line for line in r.stdout.splitlines() if line.split()[:1] == [str(step)]), "")
        check(f"{logged[step]:.4f}" in row and "ok" in row, f"step {step} listed with its loss {logged[step]:.4f}: {row!r}")
    check("ok (latest)" in r.stdout and f"--resume={run}:6" in r.stdout, "the latest is marked, and how to resume")
    j = json.loads(tlrun("checkpoints", run, "--json").stdout)
    entries = j["checkpoints"]
    check([e["step"] for e in entries] == [2, 4, 6], "--json lists steps 2, 4, 6")
    check(all(e["loss"] == logged[e["step"]] for e in entries), "--json's losses are metrics.jsonl's, exactly")
    sizes = [sum(os.path.getsize(os.path.join(e["dir"], f)) for f in os.listdir(e["dir"])) for e in entries]
    check([e["bytes"] for e in entries] == sizes, "--json's sizes are the files' sizes")
    check([e["latest"] for e in entries] == [False, False, True], "--json marks the latest")
    r = tlrun("checkpoints", run, "--verify")
    check(r.returncode == 0 and r.stdout.count("verified") == 3, "--verify verifies all three")

    # A flipped byte: only --verify reads the data; a truncation: found by sizes.
    path = os.path.join(run, "checkpoints", "4", "optimizer.safetensors")
    with open(path, "r+b") as f:
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    check(tlrun("checkpoints", run).returncode == 0, "a flipped byte passes the size check")
    r = tlrun("checkpoints", run, "--verify")
    check(r.returncode == 1 and "DAMAGED" in r.stdout and path + ": checksum mismatch" in r.stdout,
          f"--verify finds the flipped byte, naming the file, and exits 1 ({r.stdout.strip()[-300:]})")
    os.truncate(os.path.join(run, "checkpoints", "6", "model.safetensors"), 64)
    r = tlrun("checkpoints", run)
    check(r.returncode == 1 and "DAMAGED (latest)" in r.stdout and f"--resume={run}:4" in r.stdout,
          "a truncated latest is damaged; the newest intact one is suggested")
    r = tlrun("checkpoints", os.path.join(work, "nowhere"))
    check(r.returncode == 1 and "nowhere: does not exist" in r.stderr, "a missing run directory is named")
    r = tlrun("checkpoints", DATA)
    check(r.returncode == 1 and "has no checkpoints/ folder" in r.stderr, "a directory that is no run is named")
    check(tlrun("checkpoints", "--help").returncode == 0, "tlrun checkpoints --help")


def evaluate_json(source):
    r = tlrun("evaluate", source, "--text", text_file(WORK), "--json")
    return (json.loads(r.stdout)["perplexity"] if r.returncode == 0 else None), r


def test_sharded(work, rng):
    seed = int(rng.integers(1, 2**31))
    runs = {}
    for form in ("full", "sharded"):
        runs[form] = os.path.join(work, f"form-{form}")
        r = train(runs[form], "--set", f"checkpoint_every=2,seed={seed},checkpoint_weights={form}")
        check(r.returncode == 0, f"train saving {form} weights ({r.stderr.strip()[-300:]})")
        if r.returncode != 0:
            return
    full, sharded = runs["full"], runs["sharded"]
    ckpt = latest(sharded)
    check(sorted(os.listdir(ckpt)) == ["master-0-of-1.safetensors", "optimizer.safetensors", "state.json"],
          f"one rank, sharded: a single weight range file and no model.safetensors ({sorted(os.listdir(ckpt))})")
    check([e["loss"] for e in metrics(full)] == [e["loss"] for e in metrics(sharded)], "the two runs train alike")
    w_full, w_sharded = checkpoint_weights(latest(full)), checkpoint_weights(ckpt)
    check(all((w_full[k] == w_sharded[k]).all() for k in w_full) and set(w_full) == set(w_sharded),
          "the range file holds the full checkpoint's weights, bitwise")

    same = lambda what, a, b: check(a is not None and a == b, f"{what}: sharded as full ({a})")  # noqa: E731
    for ref in (sharded, f"{sharded}:4", os.path.join(sharded, "checkpoints", "latest")):
        twin = ref.replace(sharded, full)
        same(f"eval --weights {os.path.basename(ref)}", eval_loss(ref)[0], eval_loss(twin)[0])
    same("generate", greedy(sharded)[0], greedy(full)[0])
    same("evaluate --text", evaluate_json(sharded)[0], evaluate_json(full)[0])
    exported = {}
    for form, run in runs.items():
        r = tlrun("export", run, "--hf", os.path.join(work, f"form-hf-{form}"), "--dtype", "bf16")
        exported[form] = read_safetensors(os.path.join(work, f"form-hf-{form}", "model.safetensors")) \
            if r.returncode == 0 else {}
    check(exported["full"] and set(exported["full"]) == set(exported["sharded"]) and
          all((exported["full"][k] == exported["sharded"][k]).all() for k in exported["full"]),
          "export --dtype bf16: the same tensors")
    for extra in ([], ["--resume-optimizer"]):
        losses = {}
        for form, run in runs.items():
            out = os.path.join(work, f"form-init-{form}{len(extra)}")
            r = train(out, "--init-from", run, *extra, steps=2)
            losses[form] = [e["loss"] for e in metrics(out)] if r.returncode == 0 else None
            if form == "sharded":
                check(r.returncode == 0 and f"initial weights from {ckpt}/master-0-of-1.safetensors" in r.stdout,
                      f"--init-from {' '.join(extra)} names the range file ({(r.stdout + r.stderr).strip()[-200:]})")
        same(f"--init-from {' '.join(extra)}: the losses", losses["sharded"], losses["full"])
    resumed = os.path.join(work, "form-resume")
    r = train(resumed, f"--resume={sharded}:4", steps=6)
    same("--resume=RUN:4: steps 5 and 6", [e["loss"] for e in metrics(resumed)][-2:] if r.returncode == 0 else None,
         [e["loss"] for e in metrics(sharded)][-2:])
    r = tlrun("checkpoints", sharded, "--verify")
    check(r.returncode == 0 and r.stdout.count("verified") == 3 and "1 range " in r.stdout,
          f"tlrun checkpoints --verify: every range file verified ({r.stdout.strip()[-300:]})")

    # A damaged weight range file: every reader refuses naming it; a damaged optimizer file only warns.
    check_damaged_file_refused(ARGS.tlrun, sharded, work, "master-0-of-1.safetensors", lambda copy, out, target: [
        ("export", lambda: tlrun("export", copy, "--hf", out)), ("generate", lambda: greedy(copy)[1]),
        ("eval", lambda: eval_loss(copy)[1]), ("evaluate", lambda: evaluate_json(copy)[1]),
        ("--init-from", lambda: train(target, "--init-from", copy, steps=1)),
        ("--resume", lambda: train(target, f"--resume={copy}", steps=7))])
    run = os.path.join(work, "form-damaged-optimizer")
    shutil.copytree(sharded, run)
    optimizer = os.path.join(latest(run), "optimizer.safetensors")
    os.truncate(optimizer, 100)
    r = tlrun("export", run, "--hf", os.path.join(work, "form-damaged-optimizer-hf"))
    warned = [line for line in r.stderr.splitlines() if line.startswith("warning: " + optimizer)]
    check(r.returncode == 0 and len(warned) == 1,
          f"a truncated optimizer file: export works and warns once ({r.stderr.strip()[-200:]})")


TESTS = {"refs": test_refs, "damaged": test_damaged, "list": test_list, "sharded": test_sharded}


def setup(args, work, rng):
    global ARGS, WORK, TLX, DATA, VAL
    ARGS, WORK = args, work
    os.environ.setdefault("TLC_CACHE_DIR", os.path.join(work, "cache"))
    DATA = os.path.join(work, "data")
    prepare_fortunes(args.tlrun, DATA, VOCAB)
    VAL = os.path.join(DATA, "val_000000.bin")
    TLX, _ = compile_model(args.tlc, work, overrides=MODEL_SETS)
    return ()


if __name__ == "__main__":
    sys.exit(run_groups(__doc__, TESTS, setup))
