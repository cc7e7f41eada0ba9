//===- FuseSwiGlu.cpp - tl-fuse-swiglu: silu(gate) * up ------------------===//
//
// The worked example of docs/writing-a-fusion-pass.md: a match function that
// explains refusals, a rewrite pattern, and a pass that applies it.
//
//===----------------------------------------------------------------------===//
#include "compiler/Passes/Matchers.h"
#include "compiler/Passes/Passes.h"


namespace mlir::tl {
#define GEN_PASS_DEF_TLFUSESWIGLU
#include "compiler/Passes/Passes.h.inc"
} // namespace mlir::tl

using namespace mlir;
using namespace mlir::tl;
using namespace mlir::tl::match;

namespace {

struct SwiGluMatch {
  Value gate, up;
};

/// `silu(x)` or `x * sigmoid(x)`; sets x.
bool matchSilu(Value v, Value &x, std::string &why) {
  if (auto silu = def<SiluOp>(v)) {
    x = silu.getInput();
    return true;
  }
  auto mul = def<MulOp>(v);
  return mul && eitherOrder(mul, [&](Value a, Value b) {
           auto sig = def<SigmoidOp>(b);
           if (!sig) return false;
           if (sig.getInput() != a) {
             why = "the sigmoid is of another tensor than the one it scales: a "
                   "gated unit, not SiLU";
             return false;
           }
           x = a;
           return true;
         });
}

/// Rooted at the multiply by `up`.
FailureOr<SwiGluMatch> matchSwiGlu(MulOp root, std::string &why) {
  SwiGluMatch m;
  bool ok = eitherOrder(root, [&](Value gated, Value up) {
    m.up = up;
    return matchSilu(gated, m.gate, why);
  });
  if (!ok) return failure();
  return m;
}

Operation *rewriteSwiGlu(MulOp root, const SwiGluMatch &m, PatternRewriter &rewriter) {
  auto fused = rewriter.create<SwiGluOp>(root.getLoc(), m.gate, m.up);
  rewriter.replaceOp(root, fused.getResult());
  return fused;
}

struct TlFuseSwiGluPass : tl::impl::TlFuseSwiGluBase<TlFuseSwiGluPass> {
  using TlFuseSwiGluBase::TlFuseSwiGluBase;
  void runOnOperation() override {
    FusionReport r(report, getArgument());
    RewritePatternSet patterns(&getContext());
    patterns.add<FusionPattern<MulOp, SwiGluMatch>>(&getContext(), r, "swiglu", matchSwiGlu,
                                                    rewriteSwiGlu);
    if (failed(applyFusionPatterns(getOperation(), std::move(patterns), r))) signalPassFailure();
  }
};

} // namespace
