#!/usr/bin/env python3
"""tlrun evaluate end to end (CPU device), on a tiny model trained for a few steps:

  parity      task files of every layout (HellaSwag, PIQA, ARC easy/challenge, WinoGrande,
              BoolQ, OpenBookQA) written with fresh random content: the prompts, the
              harness's split of context and continuation tokens, every choice's
              log-likelihood and greedy flag equal an independent scorer written here from
              lm-evaluation-harness's rules (prompts built in Python, PyTorch's Llama of
              tests/parity/llama_reference.py in f64 on the checkpoint's weights; 1e-4
              absolute); acc, acc_norm and their stderr recomputed here equal tlrun's;
              --limit, --output, the table, and the same numbers from RUN_DIR:STEP, the
              checkpoint directory and a Hugging Face export of it
  perplexity  text files (several context windows, less than one, non-ASCII and edge
              whitespace): tokens, words, bytes and the rolling-window log-likelihood equal
              the harness's loglikelihood_rolling recomputed with the same PyTorch model
  bad-input   malformed lines (file:LINE), missing fields, labels out of range, unknown
              task names, bad --tasks items, missing files, --limit 0, sources that are no
              checkpoint, an artifact without forward_logits: each exits non-zero (2 for
              usage) with one clear line and no traceback

Token ids on the Python side come from `tlrun prepare` with the run's tokenizer (documents
are BOS + encode(text)): the same SentencePiece model through another code path, so what is
checked here is evaluate's prompts, splitting, truncation, batching and arithmetic. Fresh
random content and training seed every run (the seed is printed). Run with /usr/bin/python3.
"""
import json
import math
import os
import re
import shutil
import subprocess
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "train"))
sys.path.insert(0, os.path.join(HERE, "..", "parity"))
from llama_reference import llama_logits  # noqa: E402
from trainlib import check, compile_model, prepare_fortunes, read_safetensors, read_shard, run_groups  # noqa: E402

FORTUNES = "/usr/share/games/fortunes"
VOCAB = 400
SEQ = 64
MODEL_SETS = f"layers=2,dim=64,heads=4,kv_heads=2,ffn=96,vocab={VOCAB},seq={SEQ},micro_batch=2"
TRAIN_SETS = "batch_tokens=128,warmup_steps=3,lr=1e-2,min_lr=1e-3,val_every=0,log_every=10"
BOS = 1
TOLERANCE = 1e-4


def tlrun(*args):
    return subprocess.run([ARGS.tlrun, *args], capture_output=True, text=True)


def ok(r, what):
    if r.returncode != 0:
        sys.exit(f"{what} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def evaluate(*args):
    return ok(tlrun("evaluate", *args), "tlrun evaluate " + " ".join(args))


# ---- the independent side: tokens, prompts, scores -------------------------------------------

def encode_all(texts):
    """{text: ids} for every text, through tlrun prepare (one document per text)."""
    unique = sorted({t for t in texts if t})
    work = os.path.join(WORK, "encode")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    src = os.path.join(work, "texts.jsonl")
    with open(src, "w") as f:
        for t in unique:
            f.write(json.dumps({"text": t}) + "\n")
    out = os.path.join(work, "data")
    ok(tlrun("prepare", "--input", src, "--format", "jsonl", "--tokenizer", TOKENIZER, "--val-fraction", "0",
             "--out", out, "--quiet"), "tlrun prepare (encoding)")
    ids = [int(x) for x in read_shard(os.path.join(out, "train_000000.bin"))]
    docs, cur = [], None
    for x in ids:
        if x == BOS:
            cur = []
            docs.append(cur)
        else:
            cur.append(x)
    assert len(docs) == len(unique), (len(docs), len(unique))
    table = dict(zip(unique, docs))
    table[""] = []
    return table


def encode_pair(enc, context, continuation):
    """The harness's _encode_pair, with BOS before the context."""
    n = len(context) - len(context.rstrip())
    if n:
        continuation = context[-n:] + continuation
        context = context[:-n]
    whole, ctx = enc[context + continuation], enc[context]
    return [BOS] + ctx, whole[len(ctx):]


def pair_texts(context, continuation):
    n = len(context) - len(context.rstrip())
    if n:
        continuation = context[-n:] + continuation
        context = context[:-n]
    return [context, context + continuation]


def score(context, continuation):
    """(loglik, greedy) as the harness's _loglikelihood_tokens: the last T + 1 tokens, the
    continuation's log-probabilities from the positions before them."""
    full = (context + continuation)[-(SEQ + 1):]
    inp = torch.tensor([full[:-1]])
    with torch.no_grad():
        logp = torch.log_softmax(llama_logits(WEIGHTS, CFG, inp)[0], dim=-1)
    n = len(continuation)
    rows = logp[len(full) - 1 - n:]
    target = torch.tensor(continuation)
    loglik = float(rows.gather(1, target[:, None]).sum())
    return loglik, bool((rows.argmax(-1) == target).all())


def hs_preprocess(text):
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    return text.replace("  ", " ")


def requests(task, doc):
    """([(context, continuation)], choice strings for acc_norm, gold): the harness's tasks."""
    if task == "hellaswag":
        ctx = doc["ctx_a"] + " " + doc["ctx_b"].capitalize()
        query = hs_preprocess(doc["activity_label"] + ": " + ctx)
        choices = [hs_preprocess(e) for e in doc["endings"]]
        return [(query, " " + c) for c in choices], choices, int(doc["label"])
    if task == "piqa":
        choices = [doc["sol1"], doc["sol2"]]
        return [(f"Question: {doc['goal']}\nAnswer:", " " + c) for c in choices], choices, doc["label"]
    if task in ("arc_easy", "arc_challenge", "openbookqa"):
        c = doc["choices"]
        if task == "openbookqa":
            context, gold = doc["question_stem"], c["label"].index(doc["answerKey"].lstrip())
        else:
            context, gold = f"Question: {doc['question']}\nAnswer:", c["label"].index(doc["answerKey"])
        return [(context, " " + t) for t in c["text"]], c["text"], gold
    if task == "boolq":
        context = f"{doc['passage']}\nQuestion: {doc['question']}?\nAnswer:"
        return [(context, " no"), (context, " yes")], ["no", "yes"], int(doc["answer"])
    if task == "winogrande":
        idx = doc["sentence"].index("_")
        target = doc["sentence"][idx + 1:].strip()
        options = [doc["option1"], doc["option2"]]
        return [(doc["sentence"][:idx] + o, " " + target) for o in options], None, {"1": 0, "2": 1}[doc["answer"]]
    raise ValueError(task)


# ---- random task files -------------------------------------------------------------------------

def word_pool():
    with open(f"{FORTUNES}/magic", errors="replace") as f:
        words = sorted({w for w in re.findall(r"[A-Za-z']+", f.read()) if len(w) > 1})
    return words + ["café", "naïve", "über", "日本語", "ok."]


def phrase(rng, lo, hi, capital_first=False):
    n = int(rng.integers(lo, hi + 1))
    ws = [POOL[int(rng.integers(0, len(POOL)))] for _ in range(n)]
    if capital_first or not ws[0].isascii():
        ws[0] = "The"
    return " ".join(ws)


def random_doc(task, rng):
    p = lambda lo, hi: phrase(rng, lo, hi)  # noqa: E731
    if task == "hellaswag":
        tags = ["", " [title]", " [header]", " [step] ", "  "]
        tag = lambda: tags[int(rng.integers(0, len(tags)))]  # noqa: E731
        ctx_b = p(1, 4)
        if rng.random() < 0.5 and ctx_b.isascii():
            ctx_b = ctx_b.upper()  # capitalize() lowers the rest (tlrun: ASCII only)
        return {"ind": 1, "activity_label": p(1, 2), "ctx_a": p(2, 6) + tag() + " " + p(1, 3), "ctx_b": ctx_b,
                "ctx": "unused", "endings": [p(1, 3) + tag() + " " + p(1, 2) for _ in range(4)],
                "source_id": "x", "split": "val", "split_type": "indomain", "label": str(int(rng.integers(0, 4)))}
    if task == "piqa":
        return {"goal": p(3, 8), "sol1": p(1, 5), "sol2": p(1, 5), "label": int(rng.integers(0, 2))}
    if task in ("arc_easy", "arc_challenge", "openbookqa"):
        n = int(rng.integers(3, 6))
        labels = [str(i + 1) for i in range(n)] if rng.random() < 0.3 else [chr(65 + i) for i in range(n)]
        doc = {"id": "q", "choices": {"text": [p(1, 4) for _ in range(n)], "label": labels},
               "answerKey": labels[int(rng.integers(0, n))]}
        if task == "openbookqa":
            doc["question_stem"] = p(3, 9) + (" " if rng.random() < 0.5 else "")  # a trailing space moves
        else:
            doc["question"] = p(3, 9) + "?"
        return doc
    if task == "boolq":  # passages past the context: truncated from the left
        return {"passage": p(5, 60), "question": p(2, 6).lower(), "answer": bool(rng.random() < 0.5)}
    if task == "winogrande":
        return {"sentence": p(2, 6) + " _ " + p(1, 5) + ".", "option1": p(1, 2), "option2": p(1, 2),
                "answer": str(int(rng.integers(1, 3)))}
    raise ValueError(task)


TASKS = ["hellaswag", "piqa", "arc_easy", "arc_challenge", "winogrande", "boolq", "openbookqa"]


def write_jsonl(path, docs):
    with open(path, "w") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=bool(len(d) % 2)) + "\n")
    return path


# ---- groups --------------------------------------------------------------------------------------

def test_parity(work, rng):
    docs, specs = {}, []
    for task in TASKS:
        n = int(rng.integers(3, 7))
        docs[task] = [random_doc(task, rng) for _ in range(n)]
        specs.append(f"{task}={write_jsonl(os.path.join(work, task + '.jsonl'), docs[task])}")
    out_json = os.path.join(work, "out.json")
    r = evaluate(RUN, "--tasks", ",".join(specs[:4]), "--tasks", ",".join(specs[4:]), "--json", "--log-samples",
                 "--output", out_json)
    got = json.loads(r.stdout)
    with open(out_json) as f:
        check(json.load(f) == got, "--output holds the JSON --json prints")
    by_task = {t["task"]: t for t in got["tasks"]}
    check(list(by_task) == TASKS, f"one result per task, in order ({list(by_task)})")

    texts = []
    for task in TASKS:
        for doc in docs[task]:
            for c, k in requests(task, doc)[0]:
                texts += pair_texts(c, k)
    enc = encode_all(texts)
    worst, choices, tokens_equal, greedy_equal = 0.0, 0, True, True
    for task in TASKS:
        t = by_task[task]
        right = right_norm = 0
        check(t["examples"] == len(docs[task]) and len(t["samples"]) == len(docs[task]),
              f"{task}: {len(docs[task])} examples")
        for doc, sample in zip(docs[task], t["samples"]):
            reqs, choice_texts, gold = requests(task, doc)
            check(sample["gold"] == gold and len(sample["choices"]) == len(reqs), f"{task}: gold and choice count")
            lls = []
            for (context, continuation), c in zip(reqs, sample["choices"]):
                ctx, cont = encode_pair(enc, context, continuation)
                tokens_equal &= c["context_tokens"] == ctx and c["continuation_tokens"] == cont
                ll, greedy = score(ctx, cont)
                worst = max(worst, abs(ll - c["loglik"]))
                greedy_equal &= greedy == c["greedy"]
                choices += 1
                lls.append(c["loglik"])  # tlrun's: the aggregation is checked on its own numbers
            pred = max(range(len(lls)), key=lambda i: (lls[i], -i))
            right += pred == gold
            check(sample["pred"] == pred, f"{task}: pred of line {sample['line']}")
            if choice_texts is not None:
                norm = [ll / len(s) for ll, s in zip(lls, choice_texts)]
                pred_norm = max(range(len(norm)), key=lambda i: (norm[i], -i))
                right_norm += pred_norm == gold
        n = len(docs[task])
        acc = right / n
        check(abs(t["acc"] - acc) < 1e-12 and abs(t["acc_stderr"] - math.sqrt(acc * (1 - acc) / (n - 1))) < 1e-12,
              f"{task}: acc {t['acc']:.4f} ± {t['acc_stderr']:.4f} recomputed")
        if task in ("winogrande", "boolq"):
            check(t["acc_norm"] is None, f"{task}: no acc_norm, as the harness reports none")
        else:
            acc_norm = right_norm / n
            check(abs(t["acc_norm"] - acc_norm) < 1e-12, f"{task}: acc_norm {t['acc_norm']:.4f} recomputed")
    check(tokens_equal, "every choice's context and continuation tokens are the harness's split")
    check(greedy_equal, "every greedy flag equals PyTorch's")
    check(worst < TOLERANCE, f"{choices} per-choice log-likelihoods equal PyTorch's (worst {worst:.2e})")

    # --limit: the first N examples, the same numbers.
    hs = by_task["hellaswag"]["samples"]
    lim = json.loads(evaluate(RUN, "--tasks", specs[0], "--limit", "2", "--json", "--log-samples").stdout)
    check(lim["limit"] == 2 and [c["loglik"] for s in lim["tasks"][0]["samples"] for c in s["choices"]] ==
          [c["loglik"] for s in hs[:2] for c in s["choices"]], "--limit 2 scores the first two examples alike")
    # Every way to name the weights gives the same numbers.
    step = os.path.basename(CHECKPOINT)
    hf = os.path.join(work, "hf")
    ok(tlrun("export", CHECKPOINT, "--hf", hf), "tlrun export")
    for source, extra in [(f"{RUN}:{step}", []), (CHECKPOINT, []), (hf, ["--model", TLX])]:
        other = json.loads(evaluate(source, "--tasks", specs[0], "--json", "--log-samples", *extra).stdout)
        check([c["loglik"] for s in other["tasks"][0]["samples"] for c in s["choices"]] ==
              [c["loglik"] for s in hs for c in s["choices"]], f"source {os.path.relpath(source, work)}: same logliks")
    table = evaluate(RUN, "--tasks", ",".join(specs)).stdout
    row = re.search(r"^hellaswag +(\d+)  (\d\.\d{4}) ± (\d\.\d{4}) +(\d\.\d{4}) ± (\d\.\d{4})$", table, re.M)
    check(row is not None and float(row.group(2)) == round(by_task["hellaswag"]["acc"], 4),
          "the table's hellaswag row: examples, acc ± stderr, acc_norm ± stderr")
    check(re.search(r"^boolq +\d+  \d\.\d{4} ± \d\.\d{4} +-$", table, re.M) is not None, "boolq's acc_norm is '-'")


def rolling(tokens):
    """The harness's get_rolling_token_windows(context_len=1) and make_disjoint_window."""
    windows, predicted = [], 0
    first = min(SEQ, len(tokens))
    windows.append(([BOS] + tokens[:first - 1], tokens[:first]))
    predicted += first
    while predicted < len(tokens):
        count = min(len(tokens) - predicted, SEQ)
        end = predicted + count
        windows.append((tokens[end - SEQ - 1:end - 1], tokens[end - count:end]))
        predicted += count
    return [(a[:len(a) - (len(b) - 1)], b) for a, b in windows]


def test_perplexity(work, rng):
    with open(f"{FORTUNES}/pets", errors="replace") as f:
        pets = f.read()
    start = int(rng.integers(0, len(pets) // 2))
    texts = {"long.txt": pets[start:start + int(rng.integers(1500, 3000))],
             "short.txt": "Cats sleep.",
             "edges.txt": "  " + phrase(rng, 20, 60) + " café 日本語 \n\t" + phrase(rng, 5, 20) + "\n\n"}
    paths = []
    for name, text in texts.items():
        paths += ["--text", os.path.join(work, name)]
        with open(paths[-1], "w") as f:
            f.write(text)
    got = json.loads(evaluate(RUN, *paths, "--json").stdout)["perplexity"]
    enc = encode_all(texts.values())
    for (name, text), g in zip(texts.items(), got):
        tokens = enc[text]
        windows = rolling(tokens)
        loglik = sum(score(a, b)[0] for a, b in windows)
        words, nbytes = len(re.split(r"\s+", text)), len(text.encode())
        check(g["tokens"] == len(tokens) and g["words"] == words and g["bytes"] == nbytes,
              f"{name}: {len(tokens)} tokens, {words} words, {nbytes} bytes")
        check(abs(g["loglik"] - loglik) < TOLERANCE * len(windows),
              f"{name}: {len(windows)} windows, loglik {g['loglik']:.6f} equals PyTorch's {loglik:.6f}")
        want = {"token_perplexity": math.exp(-loglik / len(tokens)), "word_perplexity": math.exp(-loglik / words),
                "byte_perplexity": math.exp(-loglik / nbytes), "bits_per_byte": -loglik / nbytes / math.log(2)}
        check(all(abs(g[k] / v - 1) < 1e-5 for k, v in want.items()),
              f"{name}: perplexity {g['token_perplexity']:.3f}, word {g['word_perplexity']:.3f}, "
              f"bits/byte {g['bits_per_byte']:.4f}")
    table = evaluate(RUN, *paths).stdout
    check(re.search(r"^\S*long\.txt +\d+ +\d+\.\d{4}", table, re.M) is not None, "the table's perplexity rows")


def test_bad_input(work, rng):
    good = write_jsonl(os.path.join(work, "good.jsonl"), [random_doc("piqa", rng)])

    def bad(expect, want, *args):
        r = tlrun("evaluate", *args)
        check(r.returncode == expect and want in r.stderr and "Traceback" not in r.stderr
              and r.stderr.startswith("tlrun: ") and r.stdout == "",
              f"exit {expect}, '{want}': {r.stderr.strip()[:160]}")

    def lines(name, *rows):
        path = os.path.join(work, name)
        with open(path, "w") as f:
            f.write("\n".join(rows) + "\n")
        return path

    piqa = json.dumps(random_doc("piqa", rng))
    p = lines("badjson.jsonl", piqa, "", '{"goal": "x", "sol1": ')
    bad(1, f"{p}:3: not valid JSON", RUN, "--tasks", f"piqa={p}")
    p = lines("array.jsonl", "[1, 2]")
    bad(1, f"{p}:1: piqa: the line is a JSON array, expected an object", RUN, "--tasks", f"piqa={p}")
    doc = random_doc("hellaswag", rng)
    del doc["endings"]
    p = lines("missing.jsonl", json.dumps(random_doc("hellaswag", rng)), json.dumps(doc))
    bad(1, f"{p}:2: hellaswag: field 'endings' is missing", RUN, "--tasks", f"hellaswag={p}")
    p = lines("label.jsonl", json.dumps({**random_doc("hellaswag", rng), "label": "7"}))
    bad(1, f"{p}:1: hellaswag: field 'label' is \"7\", not a choice index 0..3", RUN, "--tasks", f"hellaswag={p}")
    p = lines("nolabel.jsonl", json.dumps({**random_doc("winogrande", rng), "answer": ""}))
    bad(1, f"{p}:1: winogrande: field 'answer' is \"\", expected \"1\" or \"2\"", RUN, "--tasks", f"winogrande={p}")
    p = lines("blank.jsonl", json.dumps({**random_doc("winogrande", rng), "sentence": "no blank here"}))
    bad(1, f"{p}:1: winogrande: field 'sentence' has no '_'", RUN, "--tasks", f"winogrande={p}")
    p = lines("key.jsonl", json.dumps({**random_doc("arc_easy", rng), "answerKey": "Z"}))
    bad(1, f"{p}:1: arc_easy: answerKey 'Z' is none of the choice labels", RUN, "--tasks", f"arc_easy={p}")
    p = lines("type.jsonl", json.dumps({**random_doc("boolq", rng), "answer": "yes"}))
    bad(1, f"{p}:1: boolq: field 'answer' is string, expected true or false", RUN, "--tasks", f"boolq={p}")
    p = lines("long.jsonl", json.dumps({**random_doc("piqa", rng), "sol1": phrase(rng, 60, 80)}))
    bad(1, f"{p}:1: piqa: choice 0: the continuation is", RUN, "--tasks", f"piqa={p}")
    p = lines("empty.jsonl", "", "  ")
    bad(1, f"{p}: no examples (expected one JSON object per line with goal, sol1, sol2, label)", RUN, "--tasks",
        f"piqa={p}")
    bad(2, "unknown task 'mmlu' (known: hellaswag, piqa, arc_easy, arc_challenge, winogrande, boolq, openbookqa)",
        RUN, "--tasks", f"mmlu={good}")
    bad(2, "--tasks: 'piqa' is not NAME=FILE.jsonl", RUN, "--tasks", "piqa")
    bad(2, "--tasks: task 'piqa' given twice", RUN, "--tasks", f"piqa={good}", "--tasks", f"piqa={good}")
    missing = os.path.join(work, "nowhere.jsonl")
    bad(1, f"{missing}: cannot read the piqa task file: No such file or directory", RUN, "--tasks", f"piqa={missing}")
    bad(1, f"{missing}: cannot read the --text file: No such file or directory", RUN, "--text", missing)
    p = os.path.join(work, "latin1.txt")
    with open(p, "wb") as f:
        f.write(b"caf\xe9 au lait")
    bad(1, f"{p}: not valid UTF-8: byte 0xe9 at byte offset 3", RUN, "--text", p)
    p = os.path.join(work, "empty.txt")
    open(p, "w").close()
    bad(1, f"{p}: no text to score (empty)", RUN, "--text", p)
    bad(2, "--limit: must be in 1..", RUN, "--tasks", f"piqa={good}", "--limit", "0")
    bad(2, "nothing to evaluate: give --tasks NAME=FILE.jsonl,... and/or --text FILE", RUN)
    bad(2, "--device", RUN, "--tasks", f"piqa={good}", "--device", "tpu")
    bad(1, "--output", RUN, "--tasks", f"piqa={good}", "--output", os.path.join(work, "no", "dir", "x.json"))
    # Sources that are no checkpoint.
    bad(1, f"{missing}: does not exist; expected a Hugging Face directory (config.json, model.safetensors) or a "
        ".safetensors weights file, or a checkpoint reference", missing, "--tasks", f"piqa={good}")
    stray = os.path.join(work, "stray")
    os.makedirs(stray, exist_ok=True)
    bad(1, f"{stray}: is a directory with neither state.json nor checkpoints/latest", stray, "--tasks", f"piqa={good}")
    bad(1, f"{good}: is a file of", good, "--tasks", f"piqa={good}")
    hf = os.path.join(work, "hf-bad")
    ok(tlrun("export", CHECKPOINT, "--hf", hf), "tlrun export")
    bad(2, f"{hf}: a Hugging Face directory names no compiled model: give --model MODEL.tlx", hf, "--tasks",
        f"piqa={good}")
    bad(1, f"{RUN}:99: there is no complete checkpoint of step 99", f"{RUN}:99", "--tasks", f"piqa={good}")
    # An artifact compiled from a training step has no forward_logits.
    mlir, old = os.path.join(work, "step.mlir"), os.path.join(work, "step.tlx")
    r = subprocess.run([ARGS.tlc, "emit", "tinyllama", "--preset", "tiny", "--set", MODEL_SETS, "--train-step",
                        "-o", mlir], capture_output=True, text=True)
    r = subprocess.run([ARGS.tlc, "compile", mlir, "-o", old, "--target", "cpu"], capture_output=True, text=True)
    check(r.returncode == 0 and "forward_logits" not in r.stdout, "a training step compiles without forward_logits")
    bad(1, f"{old}: the artifact has no 'forward_logits' entry point", RUN, "--model", old, "--tasks", f"piqa={good}")
    bad(1, "recompile the model with tlc compile", RUN, "--model", old, "--tasks", f"piqa={good}")
    bad(1, "given a text file, expected a .tlx artifact", RUN, "--model", mlir, "--tasks", f"piqa={good}")
    bad(1, "not a SentencePiece model", RUN, "--tokenizer", TLX, "--tasks", f"piqa={good}")


TESTS = {"parity": test_parity, "perplexity": test_perplexity, "bad-input": test_bad_input}


def setup(args, work, rng):
    """A 400-piece tokenizer on three fortune files, the tiny model, 30 training steps."""
    global ARGS, WORK, TLX, RUN, CHECKPOINT, TOKENIZER, WEIGHTS, CFG, POOL
    ARGS, WORK = args, work
    os.environ.setdefault("TLC_CACHE_DIR", os.path.join(work, "cache"))
    data = os.path.join(work, "data")
    prepare_fortunes(args.tlrun, data, VOCAB, files=("goedel", "pets", "magic"))
    TOKENIZER = os.path.join(data, "tokenizer.model")
    TLX, info = compile_model(args.tlc, work, overrides=MODEL_SETS)
    RUN = os.path.join(work, "run")
    sets = TRAIN_SETS + f",seed={int(rng.integers(1, 2**31))}"
    ok(tlrun("train", TLX, "--data", data, "--out", RUN, "--set", sets, "--steps", "30"), "tlrun train")
    with open(os.path.join(RUN, "checkpoints", "latest")) as f:
        CHECKPOINT = os.path.join(RUN, "checkpoints", f.read().strip())
    WEIGHTS = {k: torch.tensor(v, dtype=torch.float64)
               for k, v in read_safetensors(os.path.join(CHECKPOINT, "model.safetensors")).items()}
    CFG = info["config"]
    POOL = word_pool()
    return ()


if __name__ == "__main__":
    sys.exit(run_groups(__doc__, TESTS, setup))
