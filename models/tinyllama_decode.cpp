//===- tinyllama_decode.cpp - TinyLlama's one-token decode step ----------===//
#include "models/tinyllama_decode.h"

#include "models/llama_weights.h"
#include "models/nn.h"

using namespace mlir;

namespace tlc::models {

std::string decodeCacheName(char kOrV, int64_t layer) {
  return std::string("cache.") + kOrV + "." + std::to_string(layer);
}

OwningOpRef<ModuleOp> buildTinyLlamaDecode(MLIRContext &context, const LlamaConfig &c,
                                           Type floatType) {
  using namespace dsl;
  Graph g(context, "tinyllama_decode", floatType);
  const int64_t C = c.seq, D = c.dim, H = c.heads, KV = c.kvHeads, hd = c.headDim();

  LlamaWeights w = declareLlamaWeights(g, c);
  Tensor token = g.input(kDecodeToken, {1}, g.i32());
  Tensor position = g.input(kDecodePosition, {1}, g.i32());
  std::vector<Tensor> kCache, vCache;
  for (int64_t i = 0; i < c.layers; ++i) {
    kCache.push_back(g.input(decodeCacheName('k', i), {KV, C, hd}, floatType));
    vCache.push_back(g.input(decodeCacheName('v', i), {KV, C, hd}, floatType));
  }

  Tensor h = gather(w.embed, token);  // [1, D]
  nn::RopeTables rope = nn::ropeTablesAt(position, hd, c.ropeTheta);  // [1, hd]
  // The cache row of `position`, as a mask over a layer's cache.
  Tensor row = equal(g.iota({KV, C, hd}, 1, g.i32()),
                     broadcastTo(reshape(position, {1, 1, 1}), {KV, C, hd}));
  auto store = [&](Tensor cache, Tensor x) {  // x: [KV, 1, hd]
    return where(row, broadcastTo(x, {KV, C, hd}), cache);
  };
  std::vector<Tensor> newCaches;
  for (int64_t i = 0; i < c.layers; ++i) {
    const LlamaLayerWeights &l = w.layers[i];
    std::string name = "model.layers." + std::to_string(i);
    {
      Graph::Scope scope(g, name + ".self_attn");
      Tensor x = nn::rmsNorm(h, l.inputNorm, c.normEps);
      Tensor q = nn::rotary(reshape(nn::linear(x, l.q), {H, 1, hd}), rope);
      Tensor k = nn::rotary(reshape(nn::linear(x, l.k), {KV, 1, hd}), rope);
      Tensor v = reshape(nn::linear(x, l.v), {KV, 1, hd});
      Tensor keys = store(kCache[i], k), values = store(vCache[i], v);
      newCaches.push_back(keys);
      newCaches.push_back(values);
      Tensor a = nn::cachedAttention(q, keys, values, position);
      h = h + nn::linear(reshape(a, {1, D}), l.o);
    }
    {
      Graph::Scope scope(g, name + ".mlp");
      Tensor x = nn::rmsNorm(h, l.postNorm, c.normEps);
      h = h + nn::swiglu(x, l.gate, l.up, l.down);
    }
  }
  Graph::Scope scope(g, "lm_head");
  Tensor logits = nn::linear(nn::rmsNorm(h, w.finalNorm, c.normEps), w.lmHead);  // [1, vocab]
  std::vector<Tensor> results = {logits};
  std::vector<std::string> names = {kDecodeLogits};
  for (int64_t i = 0; i < c.layers; ++i) {
    results.push_back(newCaches[2 * i]);
    names.push_back(decodeCacheName('k', i));
    results.push_back(newCaches[2 * i + 1]);
    names.push_back(decodeCacheName('v', i));
  }
  return g.finish(results, names);
}

} // namespace tlc::models
