#!/usr/bin/env python3
"""Hugging Face interop: `tlrun export` and `tlrun train --init-from` (CPU device).

  parity     a corpus tokenized by a SentencePiece model trained here (Debian's spm_train),
             a few training steps, an export; an independent PyTorch Llama reading only
             config.json and model.safetensors reproduces `tlrun eval`'s loss on the same
             tokens within 1e-5 relative (f32 and bf16 exports)
  transformers  the same with transformers' LlamaForCausalLM and LlamaTokenizer; reported
             skipped (exit 77) where transformers is not importable
  roundtrip  export then --init-from (directory, file, bf16, sharded index) gives the same
             weights bitwise
  bad-input  a missing checkpoint, not a run directory, an existing output, a corrupt
             checkpoint, no run.json, mismatched shapes / config / missing tensors on
             --init-from: each a clear message naming the file, tensor or key, nothing changed

Fresh random data every run (the seed is printed). Run with /usr/bin/python3.
"""
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trainlib import (check, compile_model, latest, mean_microbatch_loss, read_safetensors, read_shard,  # noqa: E402
                      run_groups, Skip, transformers_loss, tree_state, write_safetensors, write_shard)
from llama_reference import llama_loss, load_hf_llama  # noqa: E402

# norm_eps and rope_theta differ from Llama's defaults so that the export must carry them.
MODEL_SET = "layers=2,dim=64,heads=4,kv_heads=2,ffn=96,vocab=320,seq=16,micro_batch=2,norm_eps=1e-6,rope_theta=5000"
TOKENIZER_VOCAB = 100      # spm_train's, when tlrun prepare is not there
PREPARE_VOCAB = 300        # tlrun prepare's: 3 specials and 256 byte pieces come first
TRAIN = "steps=40,batch_tokens=64,warmup_steps=2,lr=2e-2,min_lr=1e-3,log_every=1,val_every=0,val_batches=2"


def tlrun(args):
    return subprocess.run([ARGS.tlrun] + args, capture_output=True, text=True)


def prepare_corpus(dir, rng):
    """Random text prepared by `tlrun prepare --train-tokenizer` where tlrun has it;
    otherwise a tokenizer trained by spm_train, llm.c shards (BOS before each
    document) and a manifest.json in tlrun prepare's layout."""
    letters = list("abcdefghijklmn")
    words = ["".join(rng.choice(letters, size=rng.integers(2, 7))) for _ in range(60)]
    docs = [" ".join(rng.choice(words, size=rng.integers(4, 20))) for _ in range(700)]
    if tlrun(["prepare", "--help"]).returncode == 0:
        corpus = dir + ".jsonl"
        with open(corpus, "w") as f:
            f.writelines(json.dumps({"text": d}) + "\n" for d in docs)
        out = tlrun(["prepare", "--input", corpus, "--format", "jsonl", "--out", dir, "--train-tokenizer",
                     str(PREPARE_VOCAB), "--val-fraction", "0.1", "--quiet"])
        assert out.returncode == 0, out.stderr
        print(f"  (tlrun prepare: {out.stdout.strip()})")
        return dir
    print("  (tlrun prepare is not there: spm_train, spm_encode and our own shards)")
    os.makedirs(dir)
    corpus = os.path.join(dir, "corpus.txt")
    with open(corpus, "w") as f:
        f.write("\n".join(docs) + "\n")
    subprocess.run(["spm_train", f"--input={corpus}", f"--model_prefix={dir}/tokenizer", f"--vocab_size={TOKENIZER_VOCAB}",
                    "--model_type=bpe", "--character_coverage=1.0", "--minloglevel=2"], check=True, capture_output=True)
    ids = subprocess.run(["spm_encode", f"--model={dir}/tokenizer.model", "--output_format=id"], input="\n".join(docs) + "\n",
                         capture_output=True, text=True, check=True).stdout.splitlines()
    split = int(len(docs) * 0.9)
    shards = []
    for name, part in [("train_000000.bin", ids[:split]), ("val_000000.bin", ids[split:])]:
        tokens = [t for line in part for t in [1] + [int(x) for x in line.split()]]
        write_shard(os.path.join(dir, name), tokens)
        shards.append({"file": name, "split": name.split("_")[0], "tokens": len(tokens), "documents": len(part)})
    manifest = {"version": 1, "vocab_size": TOKENIZER_VOCAB, "bos_id": 1, "eos_id": 2, "unk_id": 0, "pad_id": -1,
                "tokenizer": {"file": "tokenizer.model", "trained": True, "settings": {}}, "format": "text",
                "sources": [corpus], "val_fraction": 0.1, "shard_tokens": 0, "dtype": "uint16", "shards": shards}
    with open(os.path.join(dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    return dir


def reference_loss(export_dir, shard, B, T, transform=None):
    """Mean loss over the shard's full micro-batches (tlrun eval's order), in f64."""
    w, cfg = load_hf_llama(export_dir)
    if transform:
        transform(w, cfg)
    return mean_microbatch_loss(read_shard(shard), B, T, lambda x, y: llama_loss(w, cfg, x, y).item())


def interleave_rotary(w, cfg):
    hd = cfg["dim"] // cfg["heads"]
    for i in range(cfg["layers"]):
        for name, heads in [("q_proj", cfg["heads"]), ("k_proj", cfg["kv_heads"])]:
            t = w[f"model.layers.{i}.self_attn.{name}.weight"]
            w[f"model.layers.{i}.self_attn.{name}.weight"] = t.view(heads, 2, hd // 2, -1).transpose(1, 2).reshape(t.shape)


def eval_loss(tlx, weights, shard):
    out = tlrun(["eval", tlx, "--weights", weights, "--tokens", shard, "--json"])
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["loss"]


def test_transformers(work, rng):
    try:
        from transformers import LlamaTokenizer
    except ImportError:
        raise Skip("transformers is not importable: LlamaForCausalLM / LlamaTokenizer not checked")
    tlx, info = MODEL
    B, T = info["config"]["micro_batch"], info["config"]["seq"]
    data, run = trained_run(work, rng, "tf")
    export_dir = os.path.join(work, "tf-hf")
    out = tlrun(["export", run, "--hf", export_dir])
    check(out.returncode == 0, f"tlrun export RUN_DIR --hf OUT ({out.stderr.strip()[-300:]})")
    shard = os.path.join(data, "val_000000.bin")
    ours = eval_loss(tlx, os.path.join(export_dir, "model.safetensors"), shard)
    theirs, _ = transformers_loss(export_dir, read_shard(shard), B, T)
    rel = abs(theirs - ours) / ours
    check(rel < 1e-5, f"transformers' LlamaForCausalLM loss {theirs:.9f} vs tlrun eval {ours:.9f} ({rel:.1e})")
    tok = LlamaTokenizer.from_pretrained(export_dir)
    text = "abc defg hij"
    spm = subprocess.run(["spm_encode", f"--model={export_dir}/tokenizer.model", "--output_format=id"], input=text + "\n",
                         capture_output=True, text=True, check=True).stdout.split()
    check(tok(text)["input_ids"] == [1] + [int(x) for x in spm], "LlamaTokenizer encodes as spm_encode, after BOS")


def test_parity(work, rng):
    tlx, info = MODEL
    cfg = info["config"]
    B, T = cfg["micro_batch"], cfg["seq"]
    data = prepare_corpus(os.path.join(work, "data"), rng)
    run = os.path.join(work, "run")
    out = tlrun(["train", tlx, "--data", data, "--out", run, "--set", TRAIN])
    check(out.returncode == 0, f"a few steps train ({out.stderr.strip()[-300:]})")
    check(os.path.exists(os.path.join(run, "run.json")), "the run directory records run.json")
    hf = os.path.join(work, "hf")
    out = tlrun(["export", run, "--hf", hf])
    check(out.returncode == 0, f"tlrun export RUN_DIR --hf OUT ({out.stderr.strip()[-300:]})")
    print("  " + out.stdout.strip().replace("\n", "\n  "))
    check(sorted(os.listdir(hf)) == ["config.json", "generation_config.json", "model.safetensors", "tokenizer.model",
                                     "tokenizer_config.json"], f"the export holds the HF files: {sorted(os.listdir(hf))}")
    with open(os.path.join(hf, "config.json")) as f:
        c = json.load(f)
    want = {"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 5000.0, "vocab_size": 320,
            "max_position_embeddings": 16, "tie_word_embeddings": False, "architectures": ["LlamaForCausalLM"],
            "torch_dtype": "float32", "bos_token_id": 1, "eos_token_id": 2, "model_type": "llama", "hidden_act": "silu"}
    check(all(c.get(k) == v for k, v in want.items()),
          f"config.json holds LlamaConfig's fields ({ {k: c.get(k) for k, v in want.items() if c.get(k) != v} } differ)")
    with open(os.path.join(hf, "generation_config.json")) as f:
        g = json.load(f)
    check(g.get("bos_token_id") == 1 and g.get("eos_token_id") == 2, "generation_config.json: bos/eos ids")
    with open(os.path.join(hf, "tokenizer.model"), "rb") as x, open(os.path.join(data, "tokenizer.model"), "rb") as y:
        check(x.read() == y.read(), "tokenizer.model is the data's")
    text = "abc defg hij klmn"
    ids = subprocess.run(["spm_encode", f"--model={hf}/tokenizer.model", "--output_format=id"], input=text + "\n",
                         capture_output=True, text=True)
    back = subprocess.run(["spm_decode", f"--model={hf}/tokenizer.model", "--input_format=id"], input=ids.stdout,
                          capture_output=True, text=True)
    check(ids.returncode == 0 and back.stdout.strip() == text, "SentencePiece (spm_encode/spm_decode) loads the "
                                                               "exported tokenizer.model and round-trips text")
    ckpt = latest(run)
    a, b = read_safetensors(os.path.join(ckpt, "model.safetensors")), read_safetensors(os.path.join(hf, "model.safetensors"))
    check(set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a), "f32 weights equal the checkpoint's bitwise")

    for shard in ["val_000000.bin", "train_000000.bin"]:
        path = os.path.join(data, shard)
        ours = eval_loss(tlx, os.path.join(hf, "model.safetensors"), path)
        check(ours == eval_loss(tlx, os.path.join(ckpt, "model.safetensors"), path),
              f"{shard}: tlrun eval gives the same loss on the export and the checkpoint")
        ref, n = reference_loss(hf, path, B, T)
        rel = abs(ours - ref) / ref
        check(rel < 1e-5, f"{shard}: PyTorch Llama from config.json + model.safetensors {ref:.9f} vs tlrun eval "
                          f"{ours:.9f} over {n} micro-batches ({rel:.1e} relative)")
    # Control: Meta's interleaved rotary layout (q/k rows permuted as Hugging Face's conversion
    # script undoes) is told apart, so the export's rotate-half convention is what agrees.
    off, _ = reference_loss(hf, path, B, T, interleave_rotary)
    check(abs(ours - off) / ours > 1e-5, f"control: with q/k in the interleaved rotary layout the reference is "
                                         f"off by {abs(ours - off) / ours:.1e}")
    check(ours < math.log(320) - 0.5, f"the trained model learned something (train loss {ours:.3f} < ln 320 - 0.5)")

    # bf16 from a checkpoint directory: values are the f32 ones rounded to nearest even.
    hf16 = os.path.join(work, "hf-bf16")
    out = tlrun(["export", ckpt, "--hf", hf16, "--dtype", "bf16"])
    check(out.returncode == 0, f"tlrun export CHECKPOINT --dtype bf16 ({out.stderr.strip()[-300:]})")
    with open(os.path.join(hf16, "config.json")) as f:
        check(json.load(f)["torch_dtype"] == "bfloat16", "bf16 export: torch_dtype bfloat16")
    w16 = read_safetensors(os.path.join(hf16, "model.safetensors"))
    rounded = {k: torch.tensor(v).to(torch.bfloat16).float().numpy() for k, v in a.items()}
    check(all(np.array_equal(w16[k], rounded[k]) for k in a), "bf16 weights are torch's bf16 rounding of the checkpoint's")
    path = os.path.join(data, "val_000000.bin")
    ours = eval_loss(tlx, os.path.join(hf16, "model.safetensors"), path)
    ref, _ = reference_loss(hf16, path, B, T)
    check(abs(ours - ref) / ref < 1e-5, f"bf16 export: PyTorch Llama {ref:.9f} vs tlrun eval {ours:.9f}")


def trained_run(work, rng, name="rt"):
    tlx, _ = MODEL
    data = os.path.join(work, name + "-data")
    if not os.path.exists(data):
        prepare_corpus(data, rng)
    run = os.path.join(work, name + "-run")
    out = tlrun(["train", tlx, "--data", data, "--out", run, "--set", TRAIN])
    assert out.returncode == 0, out.stderr
    return data, run


def init_run(tlx, data, work, name, source, extra=()):
    """One step with lr 0 and no weight decay: the checkpoint holds the initial weights."""
    run = os.path.join(work, name)
    out = tlrun(["train", tlx, "--data", data, "--out", run, "--init-from", source, "--set",
                 "steps=1,batch_tokens=32,lr=0,min_lr=0,weight_decay=0,warmup_steps=0,val_every=0", *extra])
    return out, run


def test_roundtrip(work, rng):
    tlx, _ = MODEL
    data, run = trained_run(work, rng)
    hf = os.path.join(work, "rt-hf")
    check(tlrun(["export", run, "--hf", hf]).returncode == 0, "export")
    exported = read_safetensors(os.path.join(hf, "model.safetensors"))
    for name, source in [("from-dir", hf), ("from-file", os.path.join(hf, "model.safetensors"))]:
        out, r = init_run(tlx, data, work, name, source)
        check(out.returncode == 0 and "initial weights from" in out.stdout, f"--init-from {name} ({out.stderr.strip()[-300:]})")
        back = read_safetensors(os.path.join(latest(r), "model.safetensors"))
        check(set(back) == set(exported) and all(np.array_equal(back[k], exported[k]) for k in back),
              f"--init-from {name}: the weights are the export's, bitwise")
    # bf16 and a sharded directory (model.safetensors.index.json), as Hugging Face saves large models.
    hf16 = os.path.join(work, "rt-hf16")
    check(tlrun(["export", run, "--hf", hf16, "--dtype", "bf16"]).returncode == 0, "bf16 export")
    out, r = init_run(tlx, data, work, "from-bf16", hf16)
    back = read_safetensors(os.path.join(latest(r), "model.safetensors"))
    w16 = read_safetensors(os.path.join(hf16, "model.safetensors"))
    check(out.returncode == 0 and all(np.array_equal(back[k], w16[k]) for k in back),
          "--init-from a bf16 export: the weights are the bf16 values, exactly")
    sharded = os.path.join(work, "rt-sharded")
    os.makedirs(sharded)
    shutil.copy(os.path.join(hf, "config.json"), sharded)
    names = sorted(exported)
    weight_map = {}
    for i, part in enumerate([names[: len(names) // 2], names[len(names) // 2:]]):
        file = f"model-{i + 1:05d}-of-00002.safetensors"
        write_safetensors(os.path.join(sharded, file), {k: exported[k] for k in part})
        weight_map.update({k: file for k in part})
    with open(os.path.join(sharded, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)
    out, r = init_run(tlx, data, work, "from-sharded", sharded)
    check(out.returncode == 0, f"--init-from a sharded directory ({out.stderr.strip()[-300:]})")
    if out.returncode == 0:
        back = read_safetensors(os.path.join(latest(r), "model.safetensors"))
        check(all(np.array_equal(back[k], exported[k]) for k in back), "sharded: the weights are bitwise the export's")
    # Tied embeddings (no lm_head.weight): lm_head starts from the embedding.
    tied = os.path.join(work, "rt-tied")
    os.makedirs(tied)
    with open(os.path.join(hf, "config.json")) as f:
        c = json.load(f)
    with open(os.path.join(tied, "config.json"), "w") as f:
        json.dump(dict(c, tie_word_embeddings=True), f)
    write_safetensors(os.path.join(tied, "model.safetensors"), {k: v for k, v in exported.items() if k != "lm_head.weight"})
    out, r = init_run(tlx, data, work, "from-tied", tied)
    check(out.returncode == 0, f"--init-from a tied directory ({out.stderr.strip()[-300:]})")
    if out.returncode == 0:
        back = read_safetensors(os.path.join(latest(r), "model.safetensors"))
        check(np.array_equal(back["lm_head.weight"], exported["model.embed_tokens.weight"]),
              "tied: lm_head starts as the embedding")


def test_bad_input(work, rng):
    tlx, info = MODEL
    out = tlrun(["export", "--help"])
    check(out.returncode == 0 and all(o in out.stdout for o in ["--hf", "--dtype", "--model", "--data", "--force"]),
          "tlrun export --help documents its options")
    data, run = trained_run(work, rng, "bad")
    hf = os.path.join(work, "bad-hf")
    check(tlrun(["export", run, "--hf", hf]).returncode == 0, "a first export")

    def refused(args, words, what, watch=()):
        before = tree_state(*watch)
        out = tlrun(args)
        msg = out.stderr.strip()
        ok = out.returncode != 0 and all(w in msg for w in words) and "Traceback" not in msg
        check(ok and tree_state(*watch) == before, f"{what}: exit {out.returncode}, '{msg[-260:]}'")

    refused(["export", os.path.join(work, "nope"), "--hf", os.path.join(work, "o1")], ["nope", "does not exist"],
            "missing checkpoint", [os.path.join(work, "o1")])
    refused(["export", data, "--hf", os.path.join(work, "o2")], [data, "neither state.json nor checkpoints/latest"], "not a run directory",
            [os.path.join(work, "o2")])
    refused(["export", run, "--hf", hf], [hf, "config.json", "model.safetensors", "--force"], "existing output", [hf])
    with open(os.path.join(hf, "README.md"), "w") as f:
        f.write("kept\n")
    out = tlrun(["export", run, "--hf", hf, "--force", "--dtype", "bf16"])
    with open(os.path.join(hf, "config.json")) as f:
        replaced = json.load(f)["torch_dtype"] == "bfloat16"
    check(out.returncode == 0 and replaced and os.path.exists(os.path.join(hf, "README.md")) and
          not [n for n in os.listdir(work) if ".tmp-" in n], "--force replaces an earlier export, keeps other files, "
                                                             "leaves no temporary directory")
    refused(["export", run, "--hf", run, "--force"], [run, "run.json", "no export directory"], "--hf RUN_DIR", [run])
    refused(["export", run, "--hf", latest(run), "--force"], ["state.json", "no export directory"], "--hf CHECKPOINT",
            [run])
    refused(["export", run, "--hf", hf, "--dtype", "f8"], ["--dtype"], "unknown --dtype", [hf])
    # A directory that takes no files, even for root (access(W_OK) says yes on /proc): refused before
    # the work, naming --hf and not the temporary beside it.
    out = tlrun(["export", run, "--hf", "/proc/tlc-hf"])
    check(out.returncode == 1 and "--hf /proc/tlc-hf: cannot create it in /proc" in out.stderr and ".tmp-" not in out.stderr,
          f"--hf /proc/tlc-hf: exit {out.returncode}, '{out.stderr.strip()[-200:]}'")
    # A checkpoint copied away from its run directory needs --model.
    alone = os.path.join(work, "alone")
    shutil.copytree(latest(run), alone)
    refused(["export", alone, "--hf", os.path.join(work, "o3")], ["run.json", "--model"], "no run.json",
            [os.path.join(work, "o3")])
    out = tlrun(["export", alone, "--hf", os.path.join(work, "o3"), "--model", tlx])
    check(out.returncode == 0 and "without tokenizer.model" in out.stdout,
          f"--model without --data exports, saying there is no tokenizer ({out.stdout.strip()[-200:]})")
    out = tlrun(["export", alone, "--hf", os.path.join(work, "o4"), "--model", tlx, "--data", data])
    check(out.returncode == 0 and os.path.exists(os.path.join(work, "o4", "tokenizer.model")), "--data gives the tokenizer")
    # A data directory without a tokenizer: exported without it, and said so.
    bare = os.path.join(work, "bare-data")
    os.makedirs(bare)
    shutil.copy(os.path.join(data, "train_000000.bin"), bare)
    out = tlrun(["export", alone, "--hf", os.path.join(work, "o5"), "--model", tlx, "--data", bare])
    check(out.returncode == 0 and "without tokenizer.model" in out.stdout and
          not os.path.exists(os.path.join(work, "o5", "tokenizer.model")), "no tokenizer: exported without, with a note")
    out = tlrun(["export", alone, "--hf", os.path.join(work, "o4"), "--model", tlx, "--data", bare, "--force"])
    check(out.returncode == 0 and not os.path.exists(os.path.join(work, "o4", "tokenizer.model")),
          "--force without a tokenizer removes the earlier export's tokenizer.model")
    # A tokenizer larger than the model.
    big = os.path.join(work, "big-data")
    os.makedirs(big)
    with open(os.path.join(data, "manifest.json")) as f:
        m = json.load(f)
    with open(os.path.join(big, "manifest.json"), "w") as f:
        json.dump(dict(m, vocab_size=400, shards=[]), f)
    refused(["export", alone, "--hf", os.path.join(work, "o8"), "--model", tlx, "--data", big],
            ["manifest.json", "400", "320"], "a tokenizer larger than the model", [os.path.join(work, "o8")])
    # A corrupt checkpoint.
    corrupt = os.path.join(work, "corrupt")
    shutil.copytree(latest(run), corrupt)
    with open(os.path.join(corrupt, "model.safetensors"), "r+b") as f:
        f.seek(-3, 2)
        f.write(b"\x7f\x7f\x7f")
    refused(["export", corrupt, "--hf", os.path.join(work, "o6"), "--model", tlx], ["model.safetensors", "checksum"],
            "corrupt model.safetensors", [os.path.join(work, "o6")])
    # A model of other dimensions than the checkpoint's.
    other, _ = compile_model(ARGS.tlc, work, MODEL_SET.replace("ffn=96", "ffn=128"), name="other")
    refused(["export", alone, "--hf", os.path.join(work, "o7"), "--model", other],
            ["model.layers.0.mlp.gate_proj.weight", "[96, 64]", "[128, 64]"], "checkpoint vs --model shapes",
            [os.path.join(work, "o7")])

    # --init-from: nothing is created when the weights do not fit.
    target = os.path.join(work, "init-bad")
    refused(["train", other, "--data", data, "--out", target, "--init-from", hf, "--steps", "1"],
            ["intermediate_size", "96", "128"], "--init-from a directory whose config.json disagrees", [target])
    refused(["train", other, "--data", data, "--out", target, "--init-from", os.path.join(hf, "model.safetensors"),
             "--steps", "1"], ["model.layers.0.mlp.gate_proj.weight", "[96, 64]", "[128, 64]"],
            "--init-from mismatched shapes names the tensor", [target])
    w = read_safetensors(os.path.join(hf, "model.safetensors"))
    missing = os.path.join(work, "missing.safetensors")
    write_safetensors(missing, {k: v for k, v in w.items() if k != "model.layers.1.self_attn.v_proj.weight"})
    refused(["train", tlx, "--data", data, "--out", target, "--init-from", missing, "--steps", "1"],
            ["model.layers.1.self_attn.v_proj.weight", "has no tensor"], "--init-from a missing tensor", [target])
    extra = os.path.join(work, "extra.safetensors")
    write_safetensors(extra, dict(w, **{"model.layers.2.mlp.up_proj.weight": w["model.layers.0.mlp.up_proj.weight"]}))
    refused(["train", tlx, "--data", data, "--out", target, "--init-from", extra, "--steps", "1"],
            ["model.layers.2.mlp.up_proj.weight", "not a parameter"], "--init-from an extra tensor", [target])
    nan = os.path.join(work, "nan.safetensors")
    bad = dict(w)
    bad["model.norm.weight"] = bad["model.norm.weight"].copy()
    bad["model.norm.weight"][5] = np.nan
    write_safetensors(nan, bad)
    refused(["train", tlx, "--data", data, "--out", target, "--init-from", nan, "--steps", "1"],
            ["model.norm.weight", "non-finite", "element 5"], "--init-from a NaN weight", [target])
    # A weight beyond float16's range: --dtype f16 refuses instead of writing inf; the export is untouched.
    huge = os.path.join(work, "huge.safetensors")
    big_w = dict(w)
    big_w["model.layers.0.mlp.up_proj.weight"] = big_w["model.layers.0.mlp.up_proj.weight"].copy()
    big_w["model.layers.0.mlp.up_proj.weight"].reshape(-1)[7] = 70000.0
    write_safetensors(huge, big_w)
    out, huge_run = init_run(tlx, data, work, "huge-run", huge)
    check(out.returncode == 0, f"--init-from a weight of 70000 ({out.stderr.strip()[-300:]})")
    refused(["export", huge_run, "--hf", hf, "--force", "--dtype", "f16"],
            ["model.layers.0.mlp.up_proj.weight", "element 7", "70000", "65504", "bf16"],
            "--dtype f16 with a weight beyond 65504", [hf])
    out = tlrun(["export", huge_run, "--hf", os.path.join(work, "huge-bf16"), "--dtype", "bf16"])
    check(out.returncode == 0, f"the same checkpoint exports as bf16 ({out.stderr.strip()[-300:]})")
    empty = os.path.join(work, "empty-dir")
    os.makedirs(empty)
    refused(["train", tlx, "--data", data, "--out", target, "--init-from", empty, "--steps", "1"],
            ["model.safetensors"], "--init-from a directory without weights", [target])
    for name, source in [("from-run", run), ("from-checkpoint", latest(run))]:
        out, started = init_run(tlx, data, work, name, source)
        check(out.returncode == 0 and f"initial weights from {latest(run)}/model.safetensors" in out.stdout,
              f"--init-from {name}: the checkpoint's verified weights ({out.stderr.strip()[-300:]})")
    refused(["train", tlx, "--data", data, "--out", target, "--init-from", os.path.join(work, "nothing"), "--steps", "1"],
            ["nothing", "does not exist"], "--init-from a missing path", [target])
    refused(["train", tlx, "--data", data, "--out", run, "--resume", "--init-from", hf], ["--init-from", "--resume"],
            "--init-from with --resume is a usage error", [run])


GROUPS = {"parity": test_parity, "transformers": test_transformers, "roundtrip": test_roundtrip,
          "bad-input": test_bad_input}


def setup(args, work, rng):
    global ARGS, MODEL
    ARGS = args
    os.environ.setdefault("TLC_CACHE_DIR", os.path.join(work, "cache"))
    MODEL = compile_model(ARGS.tlc, work, MODEL_SET)
    return ()


if __name__ == "__main__":
    sys.exit(run_groups(__doc__, GROUPS, setup))
