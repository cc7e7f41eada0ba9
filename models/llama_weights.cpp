//===- llama_weights.cpp - a Llama model's parameters in the DSL ---------===//
#include "models/llama_weights.h"

#include <string>

namespace tlc::models {

LlamaWeights declareLlamaWeights(dsl::Graph &g, const LlamaConfig &c) {
  const int64_t D = c.dim;
  // TinyLlama's (and Llama's) recipe: every matrix, the embedding included,
  // starts N(0, 0.02) and is decayed; the norms' gains start at one, undecayed.
  const auto norm = dsl::Graph::ParamPolicy::normGain();
  LlamaWeights w;
  w.embed = g.param("model.embed_tokens.weight", {c.vocab, D});
  for (int64_t i = 0; i < c.layers; ++i) {
    std::string p = "model.layers." + std::to_string(i) + ".";
    LlamaLayerWeights l;
    l.q = g.param(p + "self_attn.q_proj.weight", {D, D});
    l.k = g.param(p + "self_attn.k_proj.weight", {c.kvDim(), D});
    l.v = g.param(p + "self_attn.v_proj.weight", {c.kvDim(), D});
    l.o = g.param(p + "self_attn.o_proj.weight", {D, D});
    l.gate = g.param(p + "mlp.gate_proj.weight", {c.ffn, D});
    l.up = g.param(p + "mlp.up_proj.weight", {c.ffn, D});
    l.down = g.param(p + "mlp.down_proj.weight", {D, c.ffn});
    l.inputNorm = g.param(p + "input_layernorm.weight", {D}, norm);
    l.postNorm = g.param(p + "post_attention_layernorm.weight", {D}, norm);
    w.layers.push_back(l);
  }
  w.finalNorm = g.param("model.norm.weight", {D}, norm);
  w.lmHead = g.param("lm_head.weight", {c.vocab, D});
  return w;
}

} // namespace tlc::models
