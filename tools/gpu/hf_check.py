"""The Hugging Face check of the GPU call (check.sh runs it there, where
Python has transformers; this machine has not): transformers'
LlamaForCausalLM loads a `tlrun export` directory and gives `tlrun eval`'s
loss on the same tokens, and its tokenizer encodes like spm_encode.
prepare.sh recorded the export, the validation shard, tlrun eval's loss and
spm_encode's ids in gpu-check/hf/. Prints one line per check; exit 1 on a
mismatch, 0 with a note when transformers is missing."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "train"))
from trainlib import read_shard, transformers_loss  # noqa: E402


def main(prepared):
    try:
        import transformers
        from transformers import AutoTokenizer
    except ImportError as e:
        print(f"hf-check: skipped, {e}")
        return 0
    hf = os.path.join(prepared, "export")
    expected = json.load(open(os.path.join(prepared, "expected.json")))
    B, T = expected["micro_batch"], expected["seq"]
    theirs, n = transformers_loss(hf, read_shard(os.path.join(prepared, "val.bin")), B, T)
    ours = expected["loss"]
    rel = abs(theirs - ours) / ours
    ok = rel < 1e-5
    print(f"hf-check: transformers {transformers.__version__} LlamaForCausalLM loss {theirs:.9f} "
          f"vs tlrun eval {ours:.9f} over {n} micro-batches ({rel:.1e} relative, bound 1e-5) {'ok' if ok else 'FAIL'}")
    try:
        tok = AutoTokenizer.from_pretrained(hf)
        ids, want = tok(expected["text"])["input_ids"], [1] + expected["spm_ids"]
        same = ids == want
        verdict = "ok" if same else f"FAIL ({ids} vs {want})"
        print(f"hf-check: {type(tok).__name__} encodes {expected['text']!r} as spm_encode after BOS: {verdict}")
        ok &= same
    except Exception as e:  # a tokenizer class transformers no longer ships: report, do not fail the model check
        print(f"hf-check: the tokenizer did not load: {e!r}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
