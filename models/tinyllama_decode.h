//===- tinyllama_decode.h - TinyLlama's one-token decode step ----*- C++ -*-===//
#ifndef TL_MODELS_TINYLLAMA_DECODE_H
#define TL_MODELS_TINYLLAMA_DECODE_H

#include "models/tinyllama.h"

namespace tlc::models {

/// Names of the decode step's inputs and outputs (the runtime binds them).
constexpr const char *kDecodeToken = "token";       // i32 [1]
constexpr const char *kDecodePosition = "position"; // i32 [1], 0-based
constexpr const char *kDecodeLogits = "logits";     // [1, vocab]
/// "cache.k.<layer>", "cache.v.<layer>": [kv_heads, seq, head_dim] inputs,
/// and outputs of the same name holding the cache with this token added.
std::string decodeCacheName(char kOrV, int64_t layer);

/// Emits `@tinyllama_decode(params..., token, position, caches...) ->
/// (logits, caches...)`: the forward pass of one token at `position` with a
/// KV cache of the context length `seq`, the same model as buildTinyLlama
/// (same parameters, blocks and rotary formula). The key and value of the
/// token are written at `position` of each layer's cache (a select over the
/// whole cache: the runtime double-buffers caches between inputs and
/// outputs), and its attention reads positions 0..position of the new cache.
/// Work per token: the weights' GEMV plus O(layers * heads * seq * head_dim)
/// for the cache, whatever the position.
mlir::OwningOpRef<mlir::ModuleOp> buildTinyLlamaDecode(mlir::MLIRContext &context,
                                                       const LlamaConfig &config,
                                                       mlir::Type floatType);

} // namespace tlc::models

#endif // TL_MODELS_TINYLLAMA_DECODE_H
