//===- RecomputeInterface.h - cost and recomputation of tl ops ---*- C++ -*-===//
#ifndef TL_COMPILER_PASSES_RECOMPUTEINTERFACE_H
#define TL_COMPILER_PASSES_RECOMPUTEINTERFACE_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/IRMapping.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OpDefinition.h"

#include "compiler/Passes/RecomputeInterface.h.inc"

namespace mlir::tl {

/// Attaches the models of compiler/Passes/RecomputeModels.cpp to the tl ops
/// of `context` (loading the dialect). Idempotent.
void attachRecomputeModels(MLIRContext &context);

/// FLOPs of `op`: its model's, or one per result element without one.
int64_t flopsOf(Operation *op);

} // namespace mlir::tl

#endif
