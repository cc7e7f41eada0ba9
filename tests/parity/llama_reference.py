"""An independent PyTorch implementation of LlamaForCausalLM's training loss.

Written from the Hugging Face semantics (rotate-half rotary embedding, RMSNorm
with the weight applied after normalising, SwiGLU MLP, grouped-query attention
by repeating KV heads, untied lm_head, mean cross-entropy), using PyTorch's own
ops: it shares no code with tlc and serves as its oracle.
"""
import math

import torch
import torch.nn.functional as F


def rms_norm(x, weight, eps):
    variance = x.pow(2).mean(-1, keepdim=True)
    return weight * (x * torch.rsqrt(variance + eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def llama_logits(w, cfg, tokens):
    """tokens: [B, T] int64; w: dict of HF-named tensors; returns [B, T, V]."""
    B, T = tokens.shape
    D, H, KV = cfg["dim"], cfg["heads"], cfg["kv_heads"]
    hd = D // H
    dtype = w["model.embed_tokens.weight"].dtype
    eps = cfg["norm_eps"]

    inv_freq = 1.0 / (cfg["rope_theta"] ** (torch.arange(0, hd, 2, dtype=dtype) / hd))
    freqs = torch.outer(torch.arange(T, dtype=dtype), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos, sin = emb.cos(), emb.sin()
    causal = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)

    x = F.embedding(tokens, w["model.embed_tokens.weight"])
    for i in range(cfg["layers"]):
        p = f"model.layers.{i}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)
        q = F.linear(h, w[p + "self_attn.q_proj.weight"]).view(B, T, H, hd).transpose(1, 2)
        k = F.linear(h, w[p + "self_attn.k_proj.weight"]).view(B, T, KV, hd).transpose(1, 2)
        v = F.linear(h, w[p + "self_attn.v_proj.weight"]).view(B, T, KV, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(hd)
        probs = scores.masked_fill(causal, float("-inf")).softmax(dim=-1)
        attn = (probs @ v).transpose(1, 2).reshape(B, T, D)
        x = x + F.linear(attn, w[p + "self_attn.o_proj.weight"])
        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = F.silu(F.linear(h, w[p + "mlp.gate_proj.weight"]))
        x = x + F.linear(gate * F.linear(h, w[p + "mlp.up_proj.weight"]), w[p + "mlp.down_proj.weight"])
    x = rms_norm(x, w["model.norm.weight"], eps)
    return F.linear(x, w["lm_head.weight"])


def llama_loss(w, cfg, tokens, targets):
    logits = llama_logits(w, cfg, tokens)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))



def load_hf_llama(directory, dtype=torch.float64):
    """(weights, cfg) of a LlamaForCausalLM directory, read from config.json and
    model.safetensors only, with cfg in llama_logits' keys from LlamaConfig's fields."""
    import json
    import os

    from tlio import read_safetensors
    with open(os.path.join(directory, "config.json")) as f:
        c = json.load(f)
    assert c["model_type"] == "llama" and c.get("hidden_act", "silu") == "silu", c
    assert not c.get("tie_word_embeddings", False), "untied embeddings expected"
    cfg = {"dim": c["hidden_size"], "heads": c["num_attention_heads"],
           "kv_heads": c.get("num_key_value_heads", c["num_attention_heads"]), "layers": c["num_hidden_layers"],
           "ffn": c["intermediate_size"], "vocab": c["vocab_size"], "norm_eps": c["rms_norm_eps"],
           "rope_theta": c.get("rope_theta", 10000.0)}
    w = {k: torch.tensor(v, dtype=dtype) for k, v in read_safetensors(os.path.join(directory, "model.safetensors")).items()}
    assert w["model.embed_tokens.weight"].shape == (cfg["vocab"], cfg["dim"])
    assert w["model.layers.0.mlp.gate_proj.weight"].shape == (cfg["ffn"], cfg["dim"])
    return w, cfg
