//===- FuseRmsNorm.cpp - tl-fuse-rmsnorm: RMSNorm, add+RMSNorm, LayerNorm -===//
#include "compiler/Passes/Matchers.h"
#include "compiler/Passes/Passes.h"


namespace mlir::tl {
#define GEN_PASS_DEF_TLFUSERMSNORM
#include "compiler/Passes/Passes.h.inc"
} // namespace mlir::tl

using namespace mlir;
using namespace mlir::tl;
using namespace mlir::tl::match;

namespace {

struct NormMatch {
  Value input, weight, bias; // bias only for LayerNorm
  double eps = 0;
};

/// `rsqrt(mean(sq) + eps)` (or `sqrt(...)` when `inverse`), the per-row
/// factor of both norms; sets the squared tensor and eps.
bool matchInvRms(Value factor, bool inverse, Value &squared, double &eps,
                 std::string &why) {
  Value r = perRowFactor(factor, why);
  if (!r) return false;
  Value inner;
  if (auto root = def<RsqrtOp>(r); root && !inverse) inner = root.getInput();
  else if (auto root = def<SqrtOp>(r); root && inverse) inner = root.getInput();
  else {
    // eps added to the (r)sqrt instead of inside it
    if (auto add = def<AddOp>(r))
      if (eitherOrder(add, [&](Value a, Value b) {
            return splatValue(b) && (def<RsqrtOp>(skipUnitReshapes(a)) ||
                                     def<SqrtOp>(skipUnitReshapes(a)));
          }))
        why = "eps is added outside the square root";
    return false;
  }
  auto add = def<AddOp>(skipUnitReshapes(inner));
  if (!add) {
    Value of;
    std::string ignored;
    why = matchLastAxisMean(inner, of, ignored) ? "there is no eps inside the square root"
                                                : "the square root is not of a mean plus eps";
    return false;
  }
  bool ok = eitherOrder(add, [&](Value mean, Value e) {
    std::optional<double> c = splatValue(e);
    Value sq;
    if (!c) return false;
    if (!matchLastAxisMean(mean, sq, why)) {
      if (why.empty()) why = "the square root is not of a mean over the last axis plus eps";
      return false;
    }
    if (!matchSquare(sq, squared)) {
      why = "the mean is not of a square";
      return false;
    }
    eps = *c;
    return true;
  });
  if (!ok && why.empty()) why = "the square root is not of a mean plus a constant eps";
  return ok;
}

/// `x * factor` (either order) or `x / sqrt-factor`: the normalised tensor.
bool matchNormalised(Value v, Value &x, Value &squared, double &eps, std::string &why) {
  Operation *op = v.getDefiningOp();
  if (auto m = dyn_cast_or_null<MulOp>(op))
    return eitherOrder(m, [&](Value a, Value f) {
      x = a;
      return matchInvRms(f, false, squared, eps, why);
    });
  if (auto d = dyn_cast_or_null<DivOp>(op)) {
    x = d.getLhs();
    return matchInvRms(d.getRhs(), true, squared, eps, why);
  }
  return false;
}

/// RMSNorm rooted at the multiply by the weight.
FailureOr<NormMatch> matchRmsNorm(MulOp root, std::string &why) {
  NormMatch m;
  bool ok = eitherOrder(root, [&](Value normalised, Value wb) {
    Value w = perChannelVector(wb), squared;
    if (!w || !matchNormalised(normalised, m.input, squared, m.eps, why)) return false;
    if (squared != m.input) {
      why = "the mean of squares is of another tensor than the one normalised";
      return false;
    }
    m.weight = w;
    return true;
  });
  if (!ok) return failure();
  return m;
}

/// LayerNorm rooted at the bias add: ((x - mean(x)) * rstd) * w + b.
FailureOr<NormMatch> matchLayerNorm(AddOp root, std::string &why) {
  NormMatch m;
  bool ok = eitherOrder(root, [&](Value scaled, Value bb) {
    Value b = perChannelVector(bb);
    auto mul = def<MulOp>(scaled);
    if (!b || !mul) return false;
    return eitherOrder(mul, [&](Value normalised, Value wb) {
      Value w = perChannelVector(wb), centred, squared;
      if (!w || !matchNormalised(normalised, centred, squared, m.eps, why)) return false;
      auto sub = def<SubOp>(centred);
      Value meanOf;
      Value mean = sub ? perRowFactor(sub.getRhs(), why) : Value();
      if (!mean) {
        if (why.empty()) why = "the normalised tensor is not centred by a per-row mean";
        return false;
      }
      if (!matchLastAxisMean(mean, meanOf, why) || meanOf != sub.getLhs()) {
        if (why.empty()) why = "the normalised tensor is not centred on its own mean";
        return false;
      }
      if (squared != centred) {
        why = "the variance is not the mean square of the centred tensor";
        return false;
      }
      m = NormMatch{sub.getLhs(), w, b, m.eps};
      return true;
    });
  });
  if (!ok) return failure();
  return m;
}

/// Whether `v` is available right after `op` (for moving a fused op up).
bool dominatesAfter(Value v, Operation *op) {
  if (isa<BlockArgument>(v)) return true;
  Operation *def = v.getDefiningOp();
  return def->getBlock() == op->getBlock() && def->isBeforeInBlock(op);
}

/// A residual add feeding the norm becomes one op that yields both the sum
/// and the norm, placed at the add so the sum dominates its other users.
Operation *rewriteRmsNorm(MulOp root, const NormMatch &m, PatternRewriter &rewriter) {
  if (auto add = def<AddOp>(m.input); add && dominatesAfter(m.weight, add)) {
    rewriter.setInsertionPointAfter(add);
    auto fused = rewriter.create<AddRmsNormOp>(root.getLoc(), add.getLhs(), add.getRhs(),
                                               m.weight, m.eps);
    rewriter.replaceOp(add, fused.getSum());
    rewriter.replaceOp(root, fused.getResult());
    return fused;
  }
  auto fused = rewriter.create<RmsNormOp>(root.getLoc(), m.input, m.weight, m.eps);
  rewriter.replaceOp(root, fused.getResult());
  return fused;
}

Operation *rewriteLayerNorm(AddOp root, const NormMatch &m, PatternRewriter &rewriter) {
  auto fused = rewriter.create<LayerNormOp>(root.getLoc(), m.input, m.weight, m.bias, m.eps);
  rewriter.replaceOp(root, fused.getResult());
  return fused;
}

struct TlFuseRmsNormPass : tl::impl::TlFuseRmsNormBase<TlFuseRmsNormPass> {
  using TlFuseRmsNormBase::TlFuseRmsNormBase;
  void runOnOperation() override {
    FusionReport r(report, getArgument());
    MLIRContext *ctx = &getContext();
    // LayerNorm first: its inner `xhat * w` is an RMSNorm of the centred x
    // and would otherwise be taken as one.
    RewritePatternSet layerNorm(ctx), rmsNorm(ctx);
    layerNorm.add<FusionPattern<AddOp, NormMatch>>(ctx, r, "layernorm", matchLayerNorm,
                                                   rewriteLayerNorm);
    rmsNorm.add<FusionPattern<MulOp, NormMatch>>(ctx, r, "rmsnorm", matchRmsNorm, rewriteRmsNorm);
    if (failed(applyFusionPatterns(getOperation(), std::move(layerNorm), r)) ||
        failed(applyFusionPatterns(getOperation(), std::move(rmsNorm), r)))
      signalPassFailure();
  }
};

} // namespace
