//===- Compile.h - a model to a multi-entry-point artifact ------*- C++ -*-===//
#ifndef TL_COMPILER_DRIVER_COMPILE_H
#define TL_COMPILER_DRIVER_COMPILE_H

#include "compiler/Codegen/Lowering.h"
#include "compiler/Passes/Recompute.h"

#include "mlir/IR/BuiltinOps.h"

namespace mlir::tl {

/// The artifact of the model function `func` of `module`. A loss function
/// (no gradients yet) gives two entry points from one copy each: the
/// training step ("train_step", the default pipeline with autodiff) and the
/// forward-only loss ("eval_loss", the same forward fusions, no autodiff);
/// one from a DSL model also the decode step ("decode_step") and the logits
/// of every position ("forward_logits"), rebuilt from its tl.model (see
/// ModelEntries.h). A function that is already a training step gives
/// "train_step" only.
/// `printIr` prints the IR after every pass. Diagnostics go to the context.
/// `recompute` says what tl-recompute does in the training step.
struct RecomputeRequest {
  RecomputeMode mode = RecomputeMode::None;
  int64_t activationBudget = 0; // estimated live bytes to fit, 0: none
  RecomputeReport *report = nullptr;
};
FailureOr<::tlc::artifact::Artifact> compileModel(ModuleOp module, func::FuncOp func,
                                                  bool isLossFunction, bool printIr, bool verifyFusion,
                                                  codegen::LoweringStats &stats,
                                                  const RecomputeRequest &recompute = {});

} // namespace mlir::tl

#endif
