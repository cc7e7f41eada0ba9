//===- ModelEntries.h - entry points rebuilt from a DSL model ----*- C++ -*-===//
//
// An artifact compiled from a DSL loss function also carries functions of
// the same model that are not the loss: the one-token decode step (tlrun
// generate) and the logits of every position (tlrun evaluate). Both are
// rebuilt from the function's `tl.model` dictionary with its parameter
// type, checked to have the same parameters, and run through the forward
// fusions.
//
//===----------------------------------------------------------------------===//
#ifndef TL_COMPILER_DRIVER_MODELENTRIES_H
#define TL_COMPILER_DRIVER_MODELENTRIES_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

namespace mlir::tl {

/// The one-token decode step (KV cache, position input) of the DSL model
/// that `lossFunc` was emitted from. A null module when `lossFunc` does not
/// come from a DSL model (no `tl.model`, or a model the DSL does not know):
/// such an artifact has no "decode_step". Fails, with an error at the
/// function, when the rebuilt step's parameters differ from the function's.
/// `printIr`: as in compileModel.
FailureOr<OwningOpRef<ModuleOp>> buildDecodeStep(func::FuncOp lossFunc, bool printIr);

/// The forward pass to the logits, `(params..., tokens [B, T]) -> logits
/// [B, T, vocab]` in the model's float type, of the same DSL model: the
/// artifact's "forward_logits". Null and failure as for buildDecodeStep.
FailureOr<OwningOpRef<ModuleOp>> buildForwardLogits(func::FuncOp lossFunc, bool printIr);

} // namespace mlir::tl

#endif
