//===- FuseCrossEntropy.cpp - tl-fuse-cross-entropy ----------------------===//
#include "compiler/Passes/Matchers.h"
#include "compiler/Passes/Passes.h"


namespace mlir::tl {
#define GEN_PASS_DEF_TLFUSECROSSENTROPY
#include "compiler/Passes/Passes.h.inc"
} // namespace mlir::tl

using namespace mlir;
using namespace mlir::tl;
using namespace mlir::tl::match;

namespace {

struct CrossEntropyMatch {
  Value logits, targets;
};

/// `log(sum(exp(L - max(L)))) + max(L)` (either order), or `log(sum(exp(L)))`,
/// over the last axis; sets L.
bool matchLogSumExp(Value v, Value &logits, std::string &why) {
  auto sumOf = [&](Value l, Value &exped) {
    auto log = def<LogOp>(skipUnitReshapes(l));
    auto sum = log ? def<ReduceSumOp>(log.getInput()) : ReduceSumOp();
    if (!sum || static_cast<int64_t>(sum.getAxis()) != sum.getInput().getType().getRank() - 1)
      return false;
    auto e = def<ExpOp>(sum.getInput());
    if (!e) return false;
    exped = e.getInput();
    return true;
  };
  if (auto add = def<AddOp>(v)) {
    return eitherOrder(add, [&](Value l, Value m) {
      Value exped;
      auto max = def<ReduceMaxOp>(skipUnitReshapes(m));
      if (!max || !sumOf(l, exped)) return false;
      auto sub = def<SubOp>(exped);
      if (!sub || sub.getLhs() != max.getInput() ||
          skipUnitReshapes(perRowFactor(sub.getRhs())) != max.getResult()) {
        why = "the log-sum-exp is not stabilised by its own maximum";
        return false;
      }
      logits = max.getInput();
      return true;
    });
  }
  return sumOf(v, logits);
}

/// `sum(select(iota == targets, L, 0), -1)`: the target's logit per row.
bool matchPickedLogit(Value v, Value &logits, Value &targets, std::string &why) {
  auto sum = def<ReduceSumOp>(v);
  auto sel = sum ? def<SelectOp>(sum.getInput()) : SelectOp();
  if (!sel) return false;
  std::optional<double> zero = splatValue(sel.getFalseValue());
  auto cmp = def<CmpOp>(sel.getCondition());
  if (!zero || *zero != 0.0 || !cmp || cmp.getPredicate() != CmpPredicate::eq) return false;
  // `eq` is symmetric even though tl.cmp is not commutative in general.
  auto oneHot = [&](Value a, Value b) {
    auto iota = def<IotaOp>(a);
    if (!iota) return false;
    if (iota.getAxis() != 1) {
      why = "the one-hot mask is not over the class axis";
      return false;
    }
    targets = skipBroadcasts(b);
    logits = sel.getTrueValue();
    return cast<RankedTensorType>(targets.getType()).getRank() == 1;
  };
  return oneHot(cmp.getLhs(), cmp.getRhs()) || oneHot(cmp.getRhs(), cmp.getLhs());
}

FailureOr<CrossEntropyMatch> matchCrossEntropy(Operation *root, std::string &why) {
  if (root->getNumResults() != 1) return failure();
  auto type = dyn_cast<RankedTensorType>(root->getResult(0).getType());
  if (!type || type.getRank() != 0) return failure();
  Value perRow;
  std::string meanWhy;
  if (!matchLastAxisMean(root->getResult(0), perRow, meanWhy)) return failure();
  auto sub = def<SubOp>(perRow);
  Value lseLogits, pickedLogits, targets;
  if (!sub || !matchLogSumExp(sub.getLhs(), lseLogits, why) ||
      !matchPickedLogit(sub.getRhs(), pickedLogits, targets, why))
    return failure();
  if (lseLogits != pickedLogits) {
    why = "the target logit is picked from another tensor than the log-sum-exp's";
    return failure();
  }
  return CrossEntropyMatch{lseLogits, targets};
}

/// The mean may end in any of these ops.
template <typename RootOp> void addPattern(RewritePatternSet &patterns, const FusionReport &r) {
  patterns.add<FusionPattern<RootOp, CrossEntropyMatch>>(
      patterns.getContext(), r, "cross_entropy",
      [](RootOp root, std::string &why) { return matchCrossEntropy(root, why); },
      [](RootOp root, const CrossEntropyMatch &m, PatternRewriter &rewriter) -> Operation * {
        auto fused = rewriter.create<CrossEntropyOp>(root->getLoc(), m.logits, m.targets,
                                                     IntegerAttr());
        rewriter.replaceOp(root, fused.getLoss());
        return fused;
      });
}

struct TlFuseCrossEntropyPass : tl::impl::TlFuseCrossEntropyBase<TlFuseCrossEntropyPass> {
  using TlFuseCrossEntropyBase::TlFuseCrossEntropyBase;
  void runOnOperation() override {
    FusionReport r(report, getArgument());
    RewritePatternSet patterns(&getContext());
    addPattern<ReduceMeanOp>(patterns, r);
    addPattern<MulOp>(patterns, r);
    addPattern<DivOp>(patterns, r);
    if (failed(applyFusionPatterns(getOperation(), std::move(patterns)))) signalPassFailure();
  }
};

} // namespace
