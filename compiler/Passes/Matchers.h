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

/// Whether `v` is a per-row factor: a value broadcast along the last axis
/// only, each leading axis carried over from the operand in order. Returns
/// the unbroadcast, unit-reshaped row value. Extents alone do not decide it:
/// on a square `[n, n]`, `broadcast [n] dims = [1]` is a per-*column*
/// factor; `why` then says so.
Value perRowFactor(Value v, std::string &why);
Value perRowFactor(Value v);

/// Whether `v` is a rank-2 `[T, T']` value broadcast onto the last two axes
/// of a tensor (a mask over query rows and key columns); returns it.
Value trailingPlane(Value v, std::string &why);

/// A value equal to `v` up to unit reshapes with rank `rank`, if one is on
/// the chain of unit reshapes that produced `v`.
Value withRank(Value v, int64_t rank);

/// Restores the element-count test `perRowFactor` once used (the
/// wrong-axis miscompile of issue 8), so that the differential fusion
/// tester can show it catches it. For tests only.
void setElementCountRowCheckForTesting(bool enabled);

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
  StringRef passName() const { return pass; }
  void refused(Operation *at, const Twine &what, const Twine &why) const;

  /// Called by FusionPattern before each rewrite when fusion checking is on
  /// (see setFusionChecker); false when the check found a mismatch, which
  /// fails the pass.
  bool failedCheck() const { return checkFailed; }
  void markCheckFailed() const { checkFailed = true; }

private:
  bool enabled;
  StringRef pass;
  mutable llvm::DenseSet<Operation *> refusedAt;
  mutable bool checkFailed = false;
};

/// Translation validation of single fusions (compiler/Verify implements it;
/// `tlc compile --verify-fusion` and `tlc-opt --verify-fusion` install one).
/// Before a rewrite, `check` gets the root and a function that performs the
/// same match and rewrite on a copy of the root (returning the fused op, or
/// null when the copy does not match); it returns false on a mismatch, after
/// emitting an error at the root.
class FusionChecker {
public:
  virtual ~FusionChecker() = default;
  using RewriteCopy = function_ref<Operation *(Operation *rootCopy, PatternRewriter &)>;
  virtual bool check(Operation *root, StringRef pass, RewriteCopy rewrite) = 0;
};

/// Installs the process-wide checker (null: none). Not owned.
void setFusionChecker(FusionChecker *checker);
FusionChecker *fusionChecker();

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
    if (FusionChecker *checker = fusionChecker()) {
      bool ok = checker->check(root, report.passName(), [&](Operation *copy, PatternRewriter &rw) {
        std::string ignored;
        FailureOr<Match> mc = match(cast<OpT>(copy), ignored);
        return succeeded(mc) ? rewrite(cast<OpT>(copy), *mc, rw) : nullptr;
      });
      if (!ok) {
        report.markCheckFailed();
        return failure();
      }
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

/// Applies `patterns` greedily to `root` (constants fold, dead ops go);
/// fails when a fusion check of `report` failed.
LogicalResult applyFusionPatterns(Operation *root, RewritePatternSet &&patterns,
                                  const FusionReport &report);

} // namespace mlir::tl::match

#endif
