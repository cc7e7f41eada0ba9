//===- nn.h - neural-network building blocks in the DSL ----------*- C++ -*-===//
//
// Each helper emits primitive tl ops only; recognising these patterns and
// replacing them with fused ops is the fusion passes' job.
//
//===----------------------------------------------------------------------===//
#ifndef TL_MODELS_NN_H
#define TL_MODELS_NN_H

#include "models/dsl.h"

namespace tlc::nn {
using dsl::Tensor;

/// x W^T with W in PyTorch's [out, in] layout.
Tensor linear(Tensor x, Tensor weight);
/// x / sqrt(mean(x^2) + eps) * weight over the last axis.
Tensor rmsNorm(Tensor x, Tensor weight, double eps);
/// Softmax over `axis`, stabilised by the maximum.
Tensor softmax(Tensor x, int64_t axis);

/// cos and sin tables [seq, headDim] of rotary embedding for positions
/// offset .. offset+seq-1 (Hugging Face layout: the two halves repeat).
struct RopeTables {
  Tensor cos, sin;
};
RopeTables ropeTables(dsl::Graph &g, int64_t seq, int64_t headDim, double theta,
                      int64_t offset = 0);
/// The tables at the positions of the i32 tensor `positions` [P] (known only
/// when the function runs: a decode step's position).
RopeTables ropeTablesAt(Tensor positions, int64_t headDim, double theta);
/// x * cos + rotate_half(x) * sin for x in [..., seq, headDim].
Tensor rotary(Tensor x, const RopeTables &tables);

/// Scaled dot-product attention. q: [B, H, T, hd]; k, v: [B, KV, T, hd] with
/// KV dividing H (grouped-query attention: query head h reads KV head
/// h / (H / KV)). Returns [B, H, T, hd].
Tensor attention(Tensor q, Tensor k, Tensor v, bool causal);

/// One query token's attention over a KV cache: q [H, 1, hd]; kCache, vCache
/// [KV, C, hd] holding keys and values at positions 0..position (the rest is
/// masked, whatever it holds); position: i32 [1]. Grouped-query heads as in
/// `attention`. Returns [H, 1, hd]. Costs O(H * C * hd) whatever the position.
Tensor cachedAttention(Tensor q, Tensor kCache, Tensor vCache, Tensor position);

/// down(silu(gate(x)) * up(x)).
Tensor swiglu(Tensor x, Tensor gate, Tensor up, Tensor down);

/// Mean next-token cross-entropy of logits [N, V] against i32 targets [N],
/// in at least f32: bf16 and f16 logits are widened (f64 ones stay f64).
Tensor crossEntropy(Tensor logits, Tensor targets);

} // namespace tlc::nn

#endif // TL_MODELS_NN_H
