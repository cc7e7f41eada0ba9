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

import numpy as np


def main(prepared):
    try:
        import torch
        from transformers import AutoTokenizer, LlamaForCausalLM
    except ImportError as e:
        print(f"hf-check: skipped, {e}")
        return 0
    hf = os.path.join(prepared, "export")
    expected = json.load(open(os.path.join(prepared, "expected.json")))
    B, T = expected["micro_batch"], expected["seq"]
    with open(os.path.join(prepared, "val.bin"), "rb") as f:
        header = np.frombuffer(f.read(1024), dtype="<i4")
        tokens = np.frombuffer(f.read(), dtype="<u2")[: header[2]].astype(np.int64)
    model = LlamaForCausalLM.from_pretrained(hf, torch_dtype=torch.float64).eval()
    n = (len(tokens) - 1) // (B * T)
    total = 0.0
    with torch.no_grad():
        for s in range(n):
            span = torch.tensor(tokens[s * B * T: (s + 1) * B * T + 1])
            logits = model(input_ids=span[:-1].view(B, T)).logits
            total += torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), span[1:]).item()
    ours = expected["loss"]
    rel = abs(total / n - ours) / ours
    ok = rel < 1e-5
    print(f"hf-check: transformers {__import__('transformers').__version__} LlamaForCausalLM loss {total / n:.9f} "
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
