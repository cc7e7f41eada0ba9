//===- ReferenceEvaluator.h - op-by-op host execution of tl ------*- C++ -*-===//
//
// The oracle for every later pass: executes a tl function on the host, one op
// at a time, with plain loops that are easy to check by reading.
//
//===----------------------------------------------------------------------===//
#ifndef TL_COMPILER_EVALUATOR_H
#define TL_COMPILER_EVALUATOR_H

#include "compiler/Evaluator/HostTensor.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Support/LogicalResult.h"

#include <vector>

namespace mlir::tl {

/// The arithmetic of the evaluation. `F64` computes every float type in
/// double precision; `F32` rounds every float result to single precision.
/// Tensors stored as bf16 or f16 are rounded to that type in both modes.
enum class Precision { F32, F64 };

/// Runs `func` on `args` (one per function argument, shapes matching). On
/// failure (bad arguments, an id out of range, an op it cannot execute) an
/// error is emitted at the offending location.
FailureOr<std::vector<::tlc::HostTensor>>
evaluate(func::FuncOp func, const std::vector<::tlc::HostTensor> &args,
         Precision precision);

} // namespace mlir::tl

#endif // TL_COMPILER_EVALUATOR_H
