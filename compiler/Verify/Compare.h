//===- Compare.h - two tl functions on the same random inputs ----*- C++ -*-===//
//
// The judgement both fusion checks rest on: run two functions with the same
// signature through the reference evaluator (in f64) on the same fresh
// random inputs and compare every result element.
//
//===----------------------------------------------------------------------===//
#ifndef TL_COMPILER_VERIFY_COMPARE_H
#define TL_COMPILER_VERIFY_COMPARE_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

#include <cstdint>
#include <string>

namespace mlir::tl::validation {

struct Comparison {
  bool equal = true;
  double maxError = 0; // largest |a - b| / (1 + |a|) over all results
  std::string detail;  // where the largest difference is, or why it failed
};

/// Evaluates `before` and `after` on random inputs drawn from `seed`: floats
/// uniform in [-2, 2], integers (class ids) uniform in [0, K) with K the
/// smallest last extent > 1 of a float argument. Results agree when each
/// element satisfies |a - b| <= tolerance (1 + |a|), NaN matching NaN and
/// infinities matching in sign. Fails (with a message) when either function
/// cannot be evaluated.
FailureOr<Comparison> compareOnRandomInputs(func::FuncOp before, func::FuncOp after,
                                            uint64_t seed, std::string &error,
                                            double tolerance = 1e-6);

/// The tolerance for comparing `func`'s evaluations: 1e-6 when every float
/// is f32 or wider; 5e-2 when bf16 or f16 values (rounded at every op of the
/// unfused form, once in a fused op) take part. A wrong axis or operand
/// changes results by O(1) either way.
double toleranceFor(func::FuncOp func);

/// The number of tensor elements every op of `func` produces: what
/// evaluating it holds in memory, roughly.
int64_t evaluationSize(func::FuncOp func);

/// Prints `op` without locations; `elide` shortens large constants (for
/// reports, not for deduplication).
std::string printWithoutLocations(Operation *op, bool elide = false);

} // namespace mlir::tl::validation

#endif
