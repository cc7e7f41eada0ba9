//===- FoldHeadTransposes.cpp - tl-fold-head-transposes ------------------===//
//
// The DSL splits a projection [B, T, H * D] into heads as
// transpose(reshape(x), [0, 2, 1, 3]) -> [B, H, T, D] and merges them back
// the same way; on a GPU each transpose is a pass over the tensor (four a
// layer forward, four backward). Rope and attention can read the heads where
// the projection left them (`bthd`), so the transposes move past rope, are
// absorbed by attention, and cancel against the one after it.
//
//===----------------------------------------------------------------------===//
#include "compiler/Passes/Matchers.h"
#include "compiler/Passes/Passes.h"

namespace mlir::tl {
#define GEN_PASS_DEF_TLFOLDHEADTRANSPOSES
#include "compiler/Passes/Passes.h.inc"
} // namespace mlir::tl

using namespace mlir;
using namespace mlir::tl;
using namespace mlir::tl::match;

namespace {

/// The permutation swapping the sequence and head axes of a rank-`r` tensor:
/// [..., T, H, D] <-> [..., H, T, D] (the last three axes, 1 <-> 0).
SmallVector<int64_t> headPerm(int64_t r) {
  SmallVector<int64_t> perm;
  for (int64_t i = 0; i < r; ++i) perm.push_back(i == r - 3 ? r - 2 : i == r - 2 ? r - 3 : i);
  return perm;
}

/// The input of `v` when `v` is such a head transpose.
Value headTransposeInput(Value v) {
  auto t = def<TransposeOp>(v);
  if (!t || t.getPerm().size() < 3 || t.getPerm() != ArrayRef<int64_t>(headPerm(t.getPerm().size()))) return {};
  return t.getInput();
}

Value headTranspose(PatternRewriter &rewriter, Location loc, Value x) {
  return rewriter.create<TransposeOp>(loc, x, headPerm(cast<RankedTensorType>(x.getType()).getRank()));
}

struct RopeMatch {
  Value tokenMajor;  // [..., T, H, D]
};

/// rope(transpose(x)) == transpose(rope_bthd(x)): rope rotates each row
/// [D] by its position, wherever the row sits.
FailureOr<RopeMatch> matchRope(RopeOp root, std::string &) {
  Value x = root.getBthd() ? Value() : headTransposeInput(root.getInput());
  if (!x) return failure();
  return RopeMatch{x};
}

Operation *rewriteRope(RopeOp root, const RopeMatch &m, PatternRewriter &rewriter) {
  auto rope = rewriter.create<RopeOp>(root.getLoc(), m.tokenMajor.getType(), m.tokenMajor, root.getCos(),
                                      root.getSin(), root.getOffset(), /*bthd=*/true);
  rewriter.replaceOp(root, headTranspose(rewriter, root.getLoc(), rope.getResult()));
  return rope;
}

struct AttentionMatch {
  Value q, k, v;  // [B, T, H, D], [B, S, KV, D]
};

/// attention(transpose(q), transpose(k), transpose(v)) ==
/// (transpose(o), lse) with (o, lse) = attention_bthd(q, k, v).
FailureOr<AttentionMatch> matchAttention(AttentionOp root, std::string &why) {
  if (root.getBthd()) return failure();
  AttentionMatch m{headTransposeInput(root.getQuery()), headTransposeInput(root.getKey()),
                   headTransposeInput(root.getValue())};
  if (!m.q && !m.k && !m.v) return failure();
  if (!m.q || !m.k || !m.v) {
    // A rope of a head transpose becomes a transpose itself once it is moved.
    auto pending = [](Value v) {
      auto rope = def<RopeOp>(v);
      return rope && !rope.getBthd() && headTransposeInput(rope.getInput());
    };
    if (!llvm::any_of(ValueRange{root.getQuery(), root.getKey(), root.getValue()}, pending))
      why = "only some of query, key and value come from a head transpose";
    return failure();
  }
  return m;
}

Operation *rewriteAttention(AttentionOp root, const AttentionMatch &m, PatternRewriter &rewriter) {
  auto attention = rewriter.create<AttentionOp>(root.getLoc(), m.q, m.k, m.v, root.getScale().convertToDouble(),
                                                root.getCausal(), /*bthd=*/true);
  rewriter.replaceOp(root, {headTranspose(rewriter, root.getLoc(), attention.getResult()), attention.getLse()});
  return attention;
}

/// transpose(transpose(x, p), q) with q after p the identity is x: what
/// remains of a head split and merge once attention reads the heads in place.
struct CancelTransposes : OpRewritePattern<TransposeOp> {
  using OpRewritePattern::OpRewritePattern;
  LogicalResult matchAndRewrite(TransposeOp outer, PatternRewriter &rewriter) const override {
    auto inner = def<TransposeOp>(outer.getInput());
    if (!inner) return failure();
    ArrayRef<int64_t> p = inner.getPerm(), q = outer.getPerm();
    for (size_t i = 0; i < q.size(); ++i)
      if (p[q[i]] != static_cast<int64_t>(i)) return failure();
    rewriter.replaceOp(outer, inner.getInput());
    return success();
  }
};

struct TlFoldHeadTransposesPass : tl::impl::TlFoldHeadTransposesBase<TlFoldHeadTransposesPass> {
  using TlFoldHeadTransposesBase::TlFoldHeadTransposesBase;
  void runOnOperation() override {
    FusionReport r(report, getArgument());
    RewritePatternSet patterns(&getContext());
    patterns.add<FusionPattern<RopeOp, RopeMatch>>(&getContext(), r, "rope", matchRope, rewriteRope);
    patterns.add<FusionPattern<AttentionOp, AttentionMatch>>(&getContext(), r, "attention", matchAttention,
                                                             rewriteAttention);
    patterns.add<CancelTransposes>(&getContext());
    if (failed(applyFusionPatterns(getOperation(), std::move(patterns), r))) signalPassFailure();
  }
};

} // namespace
