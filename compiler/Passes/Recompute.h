//===- Recompute.h - tl-recompute: what the backward recomputes --*- C++ -*-===//
//
// The planner behind tl-recompute, for the driver (tlc compile
// --memory-budget/--recompute/--report) and for tlc-opt. It decides which
// forward values of a training step the backward recomputes instead of
// keeping, from an estimate of the live bytes at every point of the step.
//
//===----------------------------------------------------------------------===//
#ifndef TL_COMPILER_PASSES_RECOMPUTE_H
#define TL_COMPILER_PASSES_RECOMPUTE_H

#include "compiler/Passes/Passes.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace mlir::tl {

enum class RecomputeMode {
  None, // keep every forward value the backward reads
  Auto, // recompute what is cheap (elementwise, norms, rope, copies); with a
        // budget, then the fewest FLOPs per byte saved until it fits
  Full, // recompute whatever lowers the peak, whatever it costs
};

/// "none", "auto" or "full"; nullopt otherwise.
std::optional<RecomputeMode> parseRecomputeMode(llvm::StringRef name);
const char *recomputeModeName(RecomputeMode mode);

/// One recomputed value.
struct RecomputeDecision {
  std::string op;       // e.g. "tl.silu", "tl.add_rmsnorm #1"
  std::string location; // the forward op's
  int64_t bytes = 0;    // the value's size
  int64_t flops = 0;    // of its recomputation
  bool cheap = false;   // chosen as cheap (auto), not for the budget
};

/// What the planner decided, and the estimates it decided on.
struct RecomputeReport {
  RecomputeMode mode = RecomputeMode::None;
  int64_t budget = 0;     // the live bytes asked for, 0: none
  int64_t peakBefore = 0; // estimated peak live bytes with nothing recomputed
  int64_t peakAfter = 0;  // with the decisions below
  int64_t stepFlops = 0;  // of the training step before recomputation
  int64_t recomputedFlops = 0;
  std::vector<RecomputeDecision> decisions;
  bool ran = false;       // a training step was found and planned
  bool fits() const { return budget <= 0 || peakAfter <= budget; }
};

/// tl-recompute with its options, filling `report` (may be null) when it runs.
std::unique_ptr<Pass> createTlRecomputePass(RecomputeMode mode, int64_t budgetBytes, bool remarks,
                                            RecomputeReport *report);

} // namespace mlir::tl

#endif
