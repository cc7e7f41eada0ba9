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
// The entry points ("train_step", "eval_loss") and the optimizer kernels
// ("opt_adamw", "opt_sumsq_*") are generated code in the artifact; every call
// here runs on the device, and only download/upload/evalLoss/trainMicroBatch
// (the loss) and gradSquaredNorm (one double) move data to or from the host.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "formats/artifact.h"
#include "runtime/exec/device.h"
#include "runtime/exec/range.h"

namespace tlc {

using artifact::kFlatAlignment;  // 64 elements: 256 bytes of f32

enum class FlatBuffer { Params, Grads, Master, M, V };

// Doubles, like PyTorch's Python scalars: the kernel gets them as f32 after
// the host computes the bias corrections and products in double.
struct AdamWHyper {
  double lr = 0, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weightDecay = 0.1;
  int64_t step = 1;        // 1-based, for bias correction
  double gradScale = 1.0;  // multiplies every gradient first (1/micro-batches, clipping)
};

// PyTorch's torch.optim.AdamW (single-tensor form), per element, in f32,
// with g = gradScale * grad and the bias corrections computed in double:
//   master *= 1 - lr * weightDecay * decay
//   m += (1 - beta1) * (g - m);  v = beta2 * v + (1 - beta2) * g * g
//   master -= lr / (1 - beta1^step) * m / (sqrt(v) / sqrt(1 - beta2^step) + eps)
//   param = master (rounded to nearest even in bf16)

class TrainingState {
 public:
  // Allocates the flat buffers, the arena, and JIT-compiles every entry point.
  // Optimizer state (master, m, v) is allocated for `optimizerRange` only
  // (whole model when empty).
  // `a` and `device` must outlive the engine. Parameters start at zero:
  // set them with setParam or upload(Params, ...). The params and grads
  // buffers are allocated `allocatedElements` long when that exceeds the
  // artifact's flat size (data parallelism: equal shards); the padding is
  // zero and stays zero.
  TrainingState(const artifact::Artifact &a, Device &device, Range optimizerRange = {}, int64_t allocatedElements = 0);
  ~TrainingState();
  TrainingState(const TrainingState &) = delete;
  TrainingState &operator=(const TrainingState &) = delete;

  const artifact::Artifact &artifact() const;
  int64_t flatElements() const;  // size of every full flat buffer, padding included
  int64_t allocatedElements() const;  // params and grads as allocated (>= flatElements)
  Range optimizerRange() const;
  Range rangeOf(size_t param) const;  // param's elements in the flat buffers
  int64_t batchSize() const;          // B of the [B, T] micro-batch (the run's)
  // Runs micro-batches of `b` sequences (1 up to the compiled B, on the same
  // kernels); throws artifact::Error for one the artifact cannot run.
  void setMicroBatch(int64_t b);
  int64_t seqLen() const;             // T
  bool hasEvalLoss() const;           // false for artifacts compiled from a training step
  // The artifact's flat layout identity (artifact().layoutHash()), for checkpoints.
  std::string layoutHash() const;

  // Training step on one micro-batch ([B, T] int32 row-major tokens and
  // targets). The step adds its gradients into `grads` (call zeroGrads()
  // before the first micro-batch of an optimizer step). Returns the loss
  // (mean over the micro-batch's tokens). Throws DeviceError naming the op
  // when an id is beyond the vocabulary.
  // `afterStep(i)`: called after step i of train_step (Executor::run).
  float trainMicroBatch(const int32_t *tokens, const int32_t *targets,
                        const std::function<void(size_t step)> &afterStep = {});
  void zeroGrads();
  // Forward-only loss (no gradients computed, grads untouched): validation.
  // Throws artifact::Error when the artifact has no eval_loss entry point.
  float evalLoss(const int32_t *tokens, const int32_t *targets,
                 const std::function<void(size_t step)> &afterStep = {});

  // Sum of squares of grads over `r` (the raw accumulated sums: gradScale is
  // not applied), reduced on the device in double in a fixed order, so the
  // result is bitwise reproducible. Global norm = sqrt of the sum over ranks.
  double gradSquaredNorm(Range r);
  // Bias-corrected AdamW with decoupled weight decay over `r` (inside the
  // optimizer range); weight decay only on tensors whose `decay` flag is set
  // (default: each parameter's `decay` in the artifact, the model's policy). Writes master weights and params (compute dtype).
  void adamw(Range r, const AdamWHyper &h);
  // One flag per parameter (artifact().params order).
  void setWeightDecayMask(std::vector<bool> decayPerParam);

  // Host copies of any range of a flat buffer, as f32 (params converted from
  // bf16, and to bf16 rounding to nearest even). Master, M and V ranges are
  // of the flat buffer too and must lie inside the optimizer range. Used by
  // checkpoints, the collectives' host fallback and tests.
  void download(FlatBuffer which, Range r, float *host);
  void upload(FlatBuffer which, Range r, const float *host);
  // Device pointer to the start of a flat buffer (collectives). Master, M
  // and V point at the optimizer range's first element, not at element 0.
  void *devicePointer(FlatBuffer which);

  // Parameters from host f32 values (sets params and, inside the optimizer
  // range, master weights, both exactly these values: master keeps the f32
  // value even when params round it to bf16). Params only inside `kept`
  // (zero=3: the shard a rank keeps at rest; default everything).
  void setParam(size_t i, const float *host, Range kept = {0, INT64_MAX});

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tlc
