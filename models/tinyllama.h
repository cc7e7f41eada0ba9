//===- tinyllama.h - the TinyLlama model and its presets ---------*- C++ -*-===//
#ifndef TL_MODELS_TINYLLAMA_H
#define TL_MODELS_TINYLLAMA_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/Support/Error.h"
#include "formats/artifact.h"

#include <string>
#include <vector>

namespace tlc::models {

/// A Llama-architecture decoder: RMSNorm, rotary embedding, grouped-query
/// causal attention, SwiGLU FFN, untied embeddings, no biases.
struct LlamaConfig {
  std::string preset = "custom";
  int64_t dim = 0, layers = 0, heads = 0, kvHeads = 0, ffn = 0, vocab = 0;
  int64_t seq = 0, microBatch = 0;
  double normEps = 1e-5, ropeTheta = 10000.0;

  int64_t headDim() const { return dim / heads; }
  int64_t kvDim() const { return headDim() * kvHeads; }
  int64_t parameterCount() const;
};

/// Size limits checked by validate(), before anything is built: tensors of
/// at most artifact::kMaxTensorElements (2^31-1) elements, and kMaxLayers.
/// With both, every byte count and the parameter total fit in 64 bits.
constexpr int64_t kMaxLayers = 1024;

/// The preset names, in the order they are documented.
std::vector<std::string> presetNames();
/// `tiny` (~5M, the CPU default), `124m` (GPT-2 small sized), `1.1b`
/// (TinyLlama 1.1B exactly).
llvm::Expected<LlamaConfig> preset(const std::string &name);
/// Applies "key=value,key=value" overrides; keys: dim, layers, heads,
/// kv_heads, ffn, vocab, seq, micro_batch, norm_eps, rope_theta.
llvm::Error applyOverrides(LlamaConfig &config, const std::string &overrides);
/// The keys applyOverrides accepts, in the order they are documented.
std::vector<std::string> overrideKeys();
/// Checks sizes are positive, head counts divide, layers <= kMaxLayers and
/// every parameter and activation tensor (hidden states, FFN activations,
/// logits) has at most kMaxTensorElements elements, computed without
/// overflow; the error names the tensor and the limit.
llvm::Error validate(const LlamaConfig &config);

/// Emits the function `@tinyllama(params..., tokens, targets) -> loss`: the
/// mean next-token cross-entropy. `floatType` is the parameter and
/// activation type (f32 by default; f64 for exact parity tests).
mlir::OwningOpRef<mlir::ModuleOp> buildTinyLlama(mlir::MLIRContext &context,
                                                 const LlamaConfig &config,
                                                 mlir::Type floatType);

/// Emits `@tinyllama_logits(params..., tokens) -> logits`: the same model
/// as buildTinyLlama (its forward pass op for op) up to the logits, [B, T,
/// vocab] in `floatType`, for scoring text (tlrun evaluate).
constexpr const char *kLogitsTokens = "tokens";  // i32 [micro_batch, seq]
constexpr const char *kLogitsOutput = "logits";  // [micro_batch, seq, vocab]
mlir::OwningOpRef<mlir::ModuleOp> buildTinyLlamaLogits(mlir::MLIRContext &context,
                                                       const LlamaConfig &config,
                                                       mlir::Type floatType);

/// Reads a config back from a function's `tl.model` attribute.
llvm::Expected<LlamaConfig> configFromAttr(mlir::Attribute modelAttr);

} // namespace tlc::models

#endif // TL_MODELS_TINYLLAMA_H
