//===- FuseRope.cpp - tl-fuse-rope: rotary position embedding ------------===//
#include "compiler/Passes/Matchers.h"
#include "compiler/Passes/Passes.h"


namespace mlir::tl {
#define GEN_PASS_DEF_TLFUSEROPE
#include "compiler/Passes/Passes.h.inc"
} // namespace mlir::tl

using namespace mlir;
using namespace mlir::tl;
using namespace mlir::tl::match;

namespace {

struct RopeMatch {
  Value input, cos, sin;
};

/// A `[T, D]` table broadcast over the leading axes of `x: [..., T, D]`.
Value table(Value v, RankedTensorType x) {
  auto b = def<BroadcastOp>(v);
  if (!b) return {};
  RankedTensorType t = b.getInput().getType();
  int64_t r = x.getRank();
  if (t.getRank() != 2 || t.getShape() != x.getShape().drop_front(r - 2) ||
      b.getDims() != ArrayRef<int64_t>{r - 2, r - 1})
    return {};
  return b.getInput();
}

/// `concat(-x[D/2:], x[:D/2])` along the last axis; sets `x`.
bool matchRotateHalf(Value v, Value &x, std::string &why) {
  auto cat = def<ConcatOp>(v);
  if (!cat) return false;
  RankedTensorType out = cat.getResult().getType();
  if (cat.getInputs().size() != 2 || static_cast<int64_t>(cat.getAxis()) != out.getRank() - 1) {
    why = "the rotation is not a concatenation of two halves along the last axis";
    return false;
  }
  int64_t half = out.getShape().back() / 2;
  auto neg = def<NegOp>(cat.getInputs()[0]);
  auto hi = neg ? def<SliceOp>(neg.getInput()) : SliceOp();
  auto lo = def<SliceOp>(cat.getInputs()[1]);
  if (!hi || !lo) {
    why = def<NegOp>(cat.getInputs()[1]) ? "the halves are rotated the other way: concat(x2, -x1)"
                                          : "the rotation is not concat(-x[D/2:], x[:D/2])";
    return false;
  }
  if (hi.getInput() != lo.getInput() || hi.getAxis() != cat.getAxis() ||
      lo.getAxis() != cat.getAxis() || static_cast<int64_t>(hi.getStart()) != half ||
      static_cast<int64_t>(hi.getSize()) != half || lo.getStart() != 0 ||
      static_cast<int64_t>(lo.getSize()) != half) {
    why = "the slices are not the two halves of one tensor's last axis";
    return false;
  }
  x = lo.getInput();
  return true;
}

FailureOr<RopeMatch> matchRope(AddOp root, std::string &why) {
  RopeMatch m;
  bool ok = eitherOrder(root, [&](Value a, Value b) {
    auto direct = def<MulOp>(a), rotated = def<MulOp>(b);
    if (!direct || !rotated) return false;
    auto type = root.getResult().getType();
    return eitherOrder(direct, [&](Value x, Value c) {
      Value cosTable = table(c, type);
      if (!cosTable) return false;
      return eitherOrder(rotated, [&](Value r, Value s) {
        Value sinTable = table(s, type), rx;
        if (!sinTable || !matchRotateHalf(r, rx, why)) return false;
        if (rx != x) {
          why = "the rotated tensor differs from the one multiplied by cos";
          return false;
        }
        m = RopeMatch{x, cosTable, sinTable};
        return true;
      });
    });
  });
  if (!ok) {
    // A candidate: one of the products is of a concatenation (the rotation).
    bool rotates = llvm::any_of(root->getOperands(), [](Value v) {
      auto mul = def<MulOp>(v);
      return mul && (def<ConcatOp>(mul.getLhs()) || def<ConcatOp>(mul.getRhs()));
    });
    if (rotates && why.empty())
      why = "the tables are not [T, D] cos/sin tables broadcast over the leading axes of x";
    return failure();
  }
  return m;
}

Operation *rewriteRope(AddOp root, const RopeMatch &m, PatternRewriter &rewriter) {
  auto fused = rewriter.create<RopeOp>(root.getLoc(), root.getType(), m.input, m.cos, m.sin,
                                       /*offset=*/0);
  rewriter.replaceOp(root, fused.getResult());
  return fused;
}

struct TlFuseRopePass : tl::impl::TlFuseRopeBase<TlFuseRopePass> {
  using TlFuseRopeBase::TlFuseRopeBase;
  void runOnOperation() override {
    FusionReport r(report, getArgument());
    RewritePatternSet patterns(&getContext());
    patterns.add<FusionPattern<AddOp, RopeMatch>>(&getContext(), r, "rope", matchRope, rewriteRope);
    if (failed(applyFusionPatterns(getOperation(), std::move(patterns), r))) signalPassFailure();
  }
};

} // namespace
