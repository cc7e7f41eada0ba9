//===- llama_weights.h - a Llama model's parameters in the DSL ---*- C++ -*-===//
//
// Declared once for every function built from the model (the loss, the
// decode step), so their parameters agree in names, shapes and order: the
// artifact's entry points share them by name.
//
//===----------------------------------------------------------------------===//
#ifndef TL_MODELS_LLAMA_WEIGHTS_H
#define TL_MODELS_LLAMA_WEIGHTS_H

#include "models/dsl.h"
#include "models/tinyllama.h"

#include <vector>

namespace tlc::models {

struct LlamaLayerWeights {
  dsl::Tensor q, k, v, o, gate, up, down, inputNorm, postNorm;
};

struct LlamaWeights {
  dsl::Tensor embed;
  std::vector<LlamaLayerWeights> layers;
  dsl::Tensor finalNorm, lmHead;
};

/// Declares the parameters as function arguments in Hugging Face state-dict
/// order, named as in Hugging Face checkpoints.
LlamaWeights declareLlamaWeights(dsl::Graph &g, const LlamaConfig &c);

} // namespace tlc::models

#endif // TL_MODELS_LLAMA_WEIGHTS_H
