//===- Passes.h - tlc compiler passes ----------------------------*- C++ -*-===//
#ifndef TL_COMPILER_PASSES_H
#define TL_COMPILER_PASSES_H

#include "dialects/tl/IR/TlOps.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

#include <memory>

namespace mlir::tl {

#define GEN_PASS_DECL
#include "compiler/Passes/Passes.h.inc"

/// `registerTlPasses()` registers every tlc pass with the global registry so
/// that tlc-opt and tlc share one list.
#define GEN_PASS_REGISTRATION
#include "compiler/Passes/Passes.h.inc"

/// The default pipeline: CSE, forward fusion (rmsnorm, rope, attention,
/// cross-entropy), tl-autodiff, CSE, elementwise fusion.
void buildTrainPipeline(OpPassManager &pm);
/// The forward fusions of the training pipeline, without autodiff.
void buildLossPipeline(OpPassManager &pm);
/// Registers `tl-train-pipeline` for tlc-opt.
void registerTlPipelines();

} // namespace mlir::tl

#endif // TL_COMPILER_PASSES_H
