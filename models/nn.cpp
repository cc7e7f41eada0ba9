//===- nn.cpp - neural-network building blocks in the DSL ----------------===//
#include "models/nn.h"

#include <cmath>
#include <limits>

namespace tlc::nn {
using namespace dsl;

Tensor linear(Tensor x, Tensor weight) {
  return matmul(x, weight, /*transposeA=*/false, /*transposeB=*/true);
}

Tensor rmsNorm(Tensor x, Tensor weight, double eps) {
  Tensor variance = mean(pow(x, 2.0), -1, /*keepdim=*/true);
  return x * rsqrt(variance + eps) * weight;
}

Tensor softmax(Tensor x, int64_t axis) {
  Tensor e = exp(x - max(x, axis, /*keepdim=*/true));
  return e / sum(e, axis, /*keepdim=*/true);
}

namespace {
// Angles need f32 at least (positions up to thousands), even for bf16 models.
mlir::Type angleType(Graph &g) { return g.floatType().isF64() ? g.floatType() : g.f32(); }

// inv_freq[j] = theta^(-2j / headDim) = exp(j * (-2 ln(theta) / headDim))
Tensor inverseFrequencies(Graph &g, int64_t headDim, double theta) {
  Tensor j = g.iota({headDim / 2}, 0, angleType(g));
  return exp(j * (-2.0 * std::log(theta) / static_cast<double>(headDim)));
}

// Tables from positions [P, 1] (angle type) times inverse frequencies.
RopeTables tablesAt(Graph &g, Tensor pos, Tensor invFreq) {
  Tensor freqs = pos * invFreq;  // [P, half]
  Tensor angles = concat({freqs, freqs}, 1);
  return {convert(cos(angles), g.floatType()), convert(sin(angles), g.floatType())};
}
} // namespace

RopeTables ropeTables(Graph &g, int64_t seq, int64_t headDim, double theta,
                      int64_t offset) {
  Tensor invFreq = inverseFrequencies(g, headDim, theta);
  Tensor pos = g.iota({seq, 1}, 0, angleType(g));
  if (offset != 0) pos = pos + static_cast<double>(offset);
  return tablesAt(g, pos, invFreq);
}

RopeTables ropeTablesAt(Tensor positions, int64_t headDim, double theta) {
  Graph &g = positions.graph();
  Tensor invFreq = inverseFrequencies(g, headDim, theta);
  Tensor pos = convert(reshape(positions, {positions.dim(0), 1}), angleType(g));
  return tablesAt(g, pos, invFreq);
}

Tensor rotary(Tensor x, const RopeTables &tables) {
  int64_t half = x.dim(-1) / 2;
  Tensor x1 = slice(x, -1, 0, half), x2 = slice(x, -1, half, half);
  Tensor rotated = concat({-x2, x1}, -1);
  return x * tables.cos + rotated * tables.sin;
}

Tensor attention(Tensor q, Tensor k, Tensor v, bool causal) {
  int64_t b = q.dim(0), heads = q.dim(1), t = q.dim(2), hd = q.dim(3);
  int64_t kvHeads = k.dim(1), group = heads / kvHeads;
  if (group > 1) {  // repeat each KV head for its group of query heads
    auto repeat = [&](Tensor x) {
      Tensor r = broadcastTo(reshape(x, {b, kvHeads, 1, t, hd}),
                             {b, kvHeads, group, t, hd});
      return reshape(r, {b, heads, t, hd});
    };
    k = repeat(k);
    v = repeat(v);
  }
  Tensor scores = matmul(q, k, false, true) * (1.0 / std::sqrt(static_cast<double>(hd)));
  if (causal) {
    Graph &g = q.graph();
    Tensor row = g.iota({t, t}, 0, g.i32()), col = g.iota({t, t}, 1, g.i32());
    Tensor negInf = g.full({t, t}, -std::numeric_limits<double>::infinity(),
                           scores.elementType());
    scores = where(greaterEqual(row, col), scores, negInf);
  }
  return matmul(softmax(scores, -1), v);
}

Tensor cachedAttention(Tensor q, Tensor kCache, Tensor vCache, Tensor position) {
  Graph &g = q.graph();
  int64_t heads = q.dim(0), hd = q.dim(2), kvHeads = kCache.dim(0), context = kCache.dim(1);
  int64_t group = heads / kvHeads;
  // Query head h = kv * group + g reads KV head kv: group the query heads by
  // their KV head, so the cache is read as it is, never repeated.
  Tensor qg = reshape(q, {kvHeads, group, hd});
  Tensor scores = matmul(qg, kCache, false, true) * (1.0 / std::sqrt(static_cast<double>(hd)));
  Tensor key = g.iota({kvHeads, group, context}, 2, g.i32());
  Tensor visible = greaterEqual(broadcastTo(reshape(position, {1, 1, 1}), key.shape()), key);
  Tensor negInf = g.full(scores.shape(), -std::numeric_limits<double>::infinity(),
                         scores.elementType());
  scores = where(visible, scores, negInf);
  return reshape(matmul(softmax(scores, -1), vCache), {heads, 1, hd});
}

Tensor swiglu(Tensor x, Tensor gate, Tensor up, Tensor down) {
  Tensor gated = silu(linear(x, gate));
  return linear(gated * linear(x, up), down);
}

Tensor crossEntropy(Tensor logits, Tensor targets) {
  Graph &g = logits.graph();
  // In f32, as PyTorch's autocast computes it: a bf16 loss would keep 3
  // significant digits (tl-fuse-cross-entropy reads the bf16 logits as they are).
  if (logits.elementType().getIntOrFloatBitWidth() < 32) logits = convert(logits, g.f32());
  int64_t n = logits.dim(0), vocab = logits.dim(1);
  Tensor m = max(logits, -1);  // [N]
  Tensor shifted = logits - reshape(m, {n, 1});
  Tensor logSumExp = log(sum(exp(shifted), -1)) + m;
  // The target's logit, picked with a one-hot mask.
  Tensor classes = g.iota({n, vocab}, 1, g.i32());
  Tensor isTarget = equal(classes, reshape(targets, {n, 1}));
  Tensor picked = sum(where(isTarget, logits, g.full({n, vocab}, 0.0, logits.elementType())), -1);
  return mean(logSumExp - picked, 0);
}

} // namespace tlc::nn
