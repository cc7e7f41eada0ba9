//===- Matchers.h - helpers for recognising primitive patterns ---*- C++ -*-===//
//
// The vocabulary the fusion passes match with. A pattern usually walks from
// its root op to the producers, looking through the shape plumbing the DSL
// inserts (broadcasts that restore a reduced axis, reshapes that add or drop
// unit dimensions) and trying both operand orders of commutative ops.
//
//===----------------------------------------------------------------------===//
#ifndef TL_COMPILER_PASSES_MATCHERS_H
#define TL_COMPILER_PASSES_MATCHERS_H

#include "dialects/tl/IR/TlOps.h"

#include "mlir/IR/PatternMatch.h"
#include "llvm/ADT/DenseSet.h"

#include <functional>

#include <optional>
#include <string>

namespace mlir::tl::match {

/// The op defining `v` if it is an OpT, else null.
template <typename OpT> OpT def(Value v) {
  return v ? v.getDefiningOp<OpT>() : OpT();
}

/// Looks through reshapes that only insert or remove dimensions of size 1.
Value skipUnitReshapes(Value v);

/// Looks through unit reshapes and broadcasts: the value a broadcast
/// operand was made from.
Value skipBroadcasts(Value v);

/// The value of a splat constant (possibly broadcast or reshaped).
std::optional<double> splatValue(Value v);

/// Calls `f(a, b)` with the two operands of a binary op in both orders;
/// true when either order matches.
template <typename F> bool eitherOrder(Operation *op, F f) {
  Value a = op->getOperand(0), b = op->getOperand(1);
  return f(a, b) || (op->hasTrait<OpTrait::IsCommutative>() && f(b, a));
}

/// Whether `v` is `x * x` or `x ^ 2`; sets `x`.
bool matchSquare(Value v, Value &x);

/// Whether `v` is the mean of `of` over its last axis, written as
/// `reduce_mean`, `reduce_sum * (1/n)` or `reduce_sum / n`; sets `of`.
/// `why` explains a reduction over another axis.
bool matchLastAxisMean(Value v, Value &of, std::string &why);

/// Whether `v` is a per-row factor broadcast back over the last axis of a
/// tensor of rank `rank`; returns the unbroadcast, unit-reshaped row value.
Value perRowFactor(Value v);

/// Whether `v` is a rank-1 tensor broadcast along the last axis; returns it.
Value perChannelVector(Value v);

/// Records what a pass fused and why candidates were refused, as MLIR
/// remarks at the candidate's location, when `enabled`.
/// A candidate refused several times (the greedy driver revisits ops) is
/// reported once.
class FusionReport {
public:
  FusionReport(bool enabled, StringRef pass) : enabled(enabled), pass(pass) {}
  void fused(Operation *at, const Twine &what) const;
  void refused(Operation *at, const Twine &what, const Twine &why) const;

private:
  bool enabled;
  StringRef pass;
  mutable llvm::DenseSet<Operation *> refusedAt;
};

/// The rewrite pattern every fusion pass uses: rooted at an OpT, it calls
/// `match(root, why)` (a FailureOr of what the fused op needs, setting `why`
/// for a near-miss worth reporting) and, on success, `rewrite(root, match,
/// rewriter)`, which creates the fused op, replaces the root and returns the
/// fused op. Fusions and refusals go to the report.
template <typename OpT, typename Match>
struct FusionPattern : OpRewritePattern<OpT> {
  using MatchFn = std::function<FailureOr<Match>(OpT, std::string &)>;
  using RewriteFn = std::function<Operation *(OpT, const Match &, PatternRewriter &)>;

  FusionPattern(MLIRContext *ctx, const FusionReport &report, StringRef what, MatchFn match,
                RewriteFn rewrite, PatternBenefit benefit = 1)
      : OpRewritePattern<OpT>(ctx, benefit), report(report), what(what.str()),
        match(std::move(match)), rewrite(std::move(rewrite)) {}

  LogicalResult matchAndRewrite(OpT root, PatternRewriter &rewriter) const override {
    std::string why;
    FailureOr<Match> m = match(root, why);
    if (failed(m)) {
      if (!why.empty()) report.refused(root, what, why);
      return failure();
    }
    Operation *fused = rewrite(root, *m, rewriter);
    report.fused(fused, fused->getName().getStringRef().drop_front(3));
    return success();
  }

  const FusionReport &report;
  std::string what;
  MatchFn match;
  RewriteFn rewrite;
};

/// Applies `patterns` greedily to `root` (constants fold, dead ops go).
LogicalResult applyFusionPatterns(Operation *root, RewritePatternSet &&patterns);

} // namespace mlir::tl::match

#endif
