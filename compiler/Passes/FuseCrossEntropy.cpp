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

/// Whether `r` reduces its input over the last axis.
template <typename ReduceOp> bool overLastAxis(ReduceOp r) {
  return r && static_cast<int64_t>(r.getAxis()) == r.getInput().getType().getRank() - 1;
}

/// `log(sum(exp(L - max(L)))) + max(L)` (either order), or `log(sum(exp(L)))`,
/// over the last axis; sets L.
bool matchLogSumExp(Value v, Value &logits, std::string &why) {
  auto sumOf = [&](Value l, Value &exped) {
    auto log = def<LogOp>(skipUnitReshapes(l));
    auto sum = log ? def<ReduceSumOp>(log.getInput()) : ReduceSumOp();
    auto e = sum ? def<ExpOp>(sum.getInput()) : ExpOp();
    if (!e) return false;
    if (!overLastAxis(sum)) {
      why = "the log-sum-exp is not over the class (last) axis";
      return false;
    }
    exped = e.getInput();
    return true;
  };
  if (auto add = def<AddOp>(v)) {
    bool ok = eitherOrder(add, [&](Value l, Value m) {
      Value exped;
      auto max = def<ReduceMaxOp>(skipUnitReshapes(m));
      if (!max || !sumOf(l, exped)) return false;
      auto sub = def<SubOp>(exped);
      Value rowMax = sub ? perRowFactor(sub.getRhs(), why) : Value();
      if (!overLastAxis(max) || !rowMax || sub.getLhs() != max.getInput() ||
          skipUnitReshapes(rowMax) != max.getResult()) {
        if (why.empty()) why = "the log-sum-exp is not stabilised by its own row maximum";
        return false;
      }
      logits = max.getInput();
      return true;
    });
    if (!ok && why.empty()) why = "the loss is not log-sum-exp minus the target logit";
    return ok;
  }
  if (sumOf(v, logits)) return true;
  if (why.empty()) why = "the loss is not log-sum-exp minus the target logit";
  return false;
}

/// `sum(select(iota == targets, L, 0), -1)`: the target's logit per row,
/// with `targets` one class id per row (broadcast along the class axis).
bool matchPickedLogit(Value v, Value &logits, Value &targets, std::string &why) {
  auto sum = def<ReduceSumOp>(v);
  auto sel = sum ? def<SelectOp>(sum.getInput()) : SelectOp();
  std::optional<double> zero = sel ? splatValue(sel.getFalseValue()) : std::nullopt;
  auto cmp = sel ? def<CmpOp>(sel.getCondition()) : CmpOp();
  if (!zero || *zero != 0.0 || !cmp || cmp.getPredicate() != CmpPredicate::eq) {
    why = "the target logit is not picked by a one-hot select (iota == target, logits, 0)";
    return false;
  }
  if (!overLastAxis(sum)) {
    why = "the picked logits are summed over another axis than the class axis";
    return false;
  }
  int64_t classAxis = sel.getResult().getType().getRank() - 1;
  // `eq` is symmetric even though tl.cmp is not commutative in general.
  auto oneHot = [&](Value a, Value b) {
    auto iota = def<IotaOp>(a);
    if (!iota) return false;
    if (static_cast<int64_t>(iota.getAxis()) != classAxis) {
      why = "the one-hot mask is not over the class axis";
      return false;
    }
    Value ids = perRowFactor(b, why);
    if (!ids) {
      if (why.empty()) why = "the class ids are not one id per row";
      return false;
    }
    // The ids as a vector: found on the chain of unit reshapes (a batch of
    // one reads `[1, T]` as `[T]`), else reshaped by the rewrite.
    Value vector = withRank(def<BroadcastOp>(skipUnitReshapes(b)).getInput(), 1);
    targets = vector ? vector : ids;
    logits = sel.getTrueValue();
    return true;
  };
  return oneHot(cmp.getLhs(), cmp.getRhs()) || oneHot(cmp.getRhs(), cmp.getLhs());
}

/// The candidate: a scalar mean over rows of a difference.
FailureOr<CrossEntropyMatch> matchCrossEntropy(Operation *root, std::string &why) {
  if (root->getNumResults() != 1) return failure();
  auto type = dyn_cast<RankedTensorType>(root->getResult(0).getType());
  if (!type || type.getRank() != 0) return failure();
  Value perRow;
  std::string meanWhy;
  if (!matchLastAxisMean(root->getResult(0), perRow, meanWhy)) return failure();
  auto sub = def<SubOp>(perRow);
  if (!sub) return failure();
  Value lseLogits, pickedLogits, targets;
  if (cast<RankedTensorType>(perRow.getType()).getRank() != 1) {
    why = "the loss is not a mean over a vector of rows";
    return failure();
  }
  if (!matchLogSumExp(sub.getLhs(), lseLogits, why) ||
      !matchPickedLogit(sub.getRhs(), pickedLogits, targets, why))
    return failure();
  if (lseLogits != pickedLogits) {
    why = "the target logit is picked from another tensor than the log-sum-exp's";
    return failure();
  }
  auto logitsType = cast<RankedTensorType>(lseLogits.getType());
  if (logitsType.getRank() != 2) {
    why = "the logits are not a [rows, classes] matrix";
    return failure();
  }
  // bf16 (or f16) logits widened to f32 for the loss: the fused op reads
  // them as they are and computes in f32 anyway, so the [N, V] f32 copy is
  // never made.
  if (auto widen = def<ConvertOp>(lseLogits)) {
    Type from = widen.getInput().getType().getElementType();
    if (logitsType.getElementType().isF32() && (from.isBF16() || from.isF16())) lseLogits = widen.getInput();
  }
  return CrossEntropyMatch{lseLogits, targets};
}

/// The mean may end in any of these ops.
template <typename RootOp> void addPattern(RewritePatternSet &patterns, const FusionReport &r) {
  patterns.add<FusionPattern<RootOp, CrossEntropyMatch>>(
      patterns.getContext(), r, "cross_entropy",
      [](RootOp root, std::string &why) { return matchCrossEntropy(root, why); },
      [](RootOp root, const CrossEntropyMatch &m, PatternRewriter &rewriter) -> Operation * {
        Value targets = m.targets;
        auto ids = cast<RankedTensorType>(targets.getType());
        if (ids.getRank() != 1)
          targets = rewriter.create<ReshapeOp>(
              root->getLoc(), RankedTensorType::get({ids.getNumElements()}, ids.getElementType()),
              targets);
        auto fused = rewriter.create<CrossEntropyOp>(
            root->getLoc(), m.logits, targets, IntegerAttr(),
            cast<RankedTensorType>(root->getResult(0).getType()).getElementType());
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
    if (failed(applyFusionPatterns(getOperation(), std::move(patterns), r))) signalPassFailure();
  }
};

} // namespace
