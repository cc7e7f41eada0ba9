//===- FusedOps.h - reference semantics of the fused tl ops ------*- C++ -*-===//
#ifndef TL_COMPILER_EVALUATOR_FUSEDOPS_H
#define TL_COMPILER_EVALUATOR_FUSEDOPS_H

#include "compiler/Evaluator/HostTensor.h"

#include "mlir/IR/Operation.h"
#include "mlir/Support/LogicalResult.h"

#include <vector>

namespace mlir::tl {

/// Whether `op` is a fused forward or backward op that runFusedOp executes.
bool isFusedOp(Operation *op);

/// Executes a fused op on its operand values (in operand order) and returns
/// its results; errors (a target id out of range) are emitted at the op.
FailureOr<std::vector<::tlc::HostTensor>>
runFusedOp(Operation *op, const std::vector<const ::tlc::HostTensor *> &operands);

} // namespace mlir::tl

#endif
