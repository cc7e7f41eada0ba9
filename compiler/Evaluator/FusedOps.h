//===- FusedOps.h - reference semantics of the fused tl ops ------*- C++ -*-===//
#ifndef TL_COMPILER_EVALUATOR_FUSEDOPS_H
#define TL_COMPILER_EVALUATOR_FUSEDOPS_H

#include "compiler/Evaluator/HostTensor.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Support/LogicalResult.h"

#include <vector>

#include "compiler/Evaluator/ReferenceSemanticsInterface.h.inc"

namespace mlir::tl {

/// Attaches the reference semantics of every fused op to the tl ops of
/// `context` (loading the dialect). Idempotent; `evaluate` calls it.
void attachReferenceSemantics(MLIRContext &context);

} // namespace mlir::tl

#endif
