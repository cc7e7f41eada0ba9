//===- DecodeStep.h - the decode step of a DSL model -------------*- C++ -*-===//
#ifndef TL_COMPILER_DRIVER_DECODESTEP_H
#define TL_COMPILER_DRIVER_DECODESTEP_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"

namespace mlir::tl {

/// The one-token decode step (KV cache, position input) of the DSL model
/// that `lossFunc` was emitted from, rebuilt from its `tl.model` dictionary
/// with its parameter type, and run through the forward fusions. A null
/// module when `tlFunc` does not come from a DSL model (no `tl.model`, or a
/// model without a decode step): such an artifact has no "decode_step".
/// Fails, with an error at the function, when the rebuilt step's
/// parameters differ from the function's. `printIr`: as in compileModel.
FailureOr<OwningOpRef<ModuleOp>> buildDecodeStep(func::FuncOp lossFunc, bool printIr);

} // namespace mlir::tl

#endif
