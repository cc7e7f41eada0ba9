// The training state of one model on one device, held in flat buffers, and
// the compiled entry points that act on it. The trainer, checkpoints and the
// collectives of data parallelism all work on element ranges of these
// buffers, so a rank can own a contiguous shard of the optimizer state.
//
// Flat layout (recorded in the artifact): parameter i occupies elements
// [offset_i, offset_i + numel_i) of every flat buffer, offsets aligned to
// kFlatAlignment elements, in the artifact's parameter order. Padding
// between tensors is zero in every buffer and stays zero.
//
//   params  compute dtype (f32 or bf16)  what the compiled step reads
//   grads   f32                           what the step writes / accumulates
//   master  f32   optimizer range only    AdamW's master weights
//   m, v    f32   optimizer range only    AdamW's moments
//
// Everything here is a sketch agreed between the training pieces; the
// engine's owner may refine it but keeps these semantics.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/artifact.h"
#include "runtime/device.h"

namespace tlc {

constexpr int64_t kFlatAlignment = 64;  // elements: 256 bytes of f32

struct Range {
  int64_t begin = 0, end = 0;  // elements of the flat buffers
  int64_t size() const { return end - begin; }
};

enum class FlatBuffer { Params, Grads, Master, M, V };

struct AdamWHyper {
  float lr = 0, beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, weightDecay = 0.1f;
  int64_t step = 1;        // 1-based, for bias correction
  float gradScale = 1.0f;  // multiplies every gradient first (1/micro-batches, clipping)
};

class Engine {
 public:
  // Allocates the flat buffers, the arena, and JIT-compiles every entry point.
  // Optimizer state (master, m, v) is allocated for `optimizerRange` only
  // (whole model when empty).
  Engine(const artifact::Artifact &a, Device &device, Range optimizerRange = {});
  ~Engine();

  const artifact::Artifact &artifact() const;
  int64_t flatElements() const;  // size of every full flat buffer, padding included
  Range optimizerRange() const;
  Range rangeOf(size_t param) const;  // param's elements in the flat buffers

  // Training step on one micro-batch ([B, T] int32 row-major tokens and
  // targets). The step adds its gradients into `grads` (call zeroGrads()
  // before the first micro-batch of an optimizer step). Returns the loss.
  float trainMicroBatch(const int32_t *tokens, const int32_t *targets);
  void zeroGrads();
  // Forward-only loss (no gradients computed): validation.
  float evalLoss(const int32_t *tokens, const int32_t *targets);

  // Sum of squares of grads over `r`, reduced on the device (global-norm clipping).
  double gradSquaredNorm(Range r);
  // Bias-corrected AdamW with decoupled weight decay over `r` (inside the
  // optimizer range); weight decay only on tensors whose `decay` flag is set
  // (default: 2-D tensors). Writes master weights and params (compute dtype).
  void adamw(Range r, const AdamWHyper &h);
  void setWeightDecayMask(std::vector<bool> decayPerParam);

  // Host copies of any range of a flat buffer, as f32 (params converted from
  // bf16). Used by checkpoints, the collectives' host fallback and tests.
  void download(FlatBuffer which, Range r, float *host);
  void upload(FlatBuffer which, Range r, const float *host);
  // Device pointer to the start of a flat buffer (collectives).
  void *devicePointer(FlatBuffer which);

  // Parameters from host f32 values (sets params and, inside the optimizer
  // range, master weights).
  void setParam(size_t i, const float *host);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tlc
