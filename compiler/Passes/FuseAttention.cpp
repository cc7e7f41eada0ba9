//===- FuseAttention.cpp - tl-fuse-attention: softmax(q k^T) v -----------===//
#include "compiler/Passes/Matchers.h"
#include "compiler/Passes/Passes.h"


#include <cmath>

namespace mlir::tl {
#define GEN_PASS_DEF_TLFUSEATTENTION
#include "compiler/Passes/Passes.h.inc"
} // namespace mlir::tl

using namespace mlir;
using namespace mlir::tl;
using namespace mlir::tl::match;

namespace {

struct AttentionMatch {
  Value q, k, v;
  double scale = 1.0;
  bool causal = false;
};

/// K or V as attention reads it: `[B, KV, S, D]` repeated for grouped-query
/// attention as reshape(broadcast(reshape(x -> [B, KV, 1, S, D]))) so that
/// query head h reads KV head h / G; returns the unrepeated tensor.
Value unrepeatKv(Value v, std::string &why) {
  auto outer = def<ReshapeOp>(v);
  auto b = outer ? def<BroadcastOp>(outer.getInput()) : BroadcastOp();
  auto inner = b ? def<ReshapeOp>(b.getInput()) : ReshapeOp();
  if (!inner) return v;
  RankedTensorType x = inner.getInput().getType(), mid = b.getResult().getType();
  if (x.getRank() != 4 || mid.getRank() != 5) return v;
  int64_t batch = x.getDimSize(0), kv = x.getDimSize(1), s = x.getDimSize(2),
          d = x.getDimSize(3), group = mid.getDimSize(2);
  SmallVector<int64_t> grouped{batch, kv, 1, s, d}, repeated{batch, kv, group, s, d};
  if (inner.getResult().getType().getShape() != ArrayRef<int64_t>(grouped) ||
      mid.getShape() != ArrayRef<int64_t>(repeated)) {
    why = "the key/value heads are repeated in another order than query head "
          "h -> KV head h / G";
    return {};
  }
  return inner.getInput();
}

/// The causal mask `row >= col` built from two iotas over `[T, T]`.
bool isCausalCompare(CmpOp cmp, std::string &why) {
  auto lhs = def<IotaOp>(cmp.getLhs()), rhs = def<IotaOp>(cmp.getRhs());
  if (!lhs || !rhs) return false;
  int64_t la = lhs.getAxis(), ra = rhs.getAxis();
  bool causal = (cmp.getPredicate() == CmpPredicate::ge && la == 0 && ra == 1) ||
                (cmp.getPredicate() == CmpPredicate::le && la == 1 && ra == 0);
  if (!causal) why = "the mask is not the causal mask row >= column";
  return causal;
}

/// An additive mask: 0 where col <= row, -inf above the diagonal.
bool isCausalAdditiveMask(Value v) {
  auto c = def<ConstantOp>(skipBroadcasts(v));
  auto dense = c ? dyn_cast<DenseFPElementsAttr>(c.getValue()) : DenseFPElementsAttr();
  if (!dense || dense.getType().getRank() != 2) return false;
  int64_t t = dense.getType().getDimSize(1), i = 0;
  for (APFloat x : dense.getValues<APFloat>()) {
    int64_t row = i / t, col = i % t;
    ++i;
    bool hidden = x.isInfinity() && x.isNegative();
    if ((col > row) != hidden || (!hidden && !x.isZero())) return false;
  }
  return true;
}

/// `scale * (q k^T)` with the scale on the scores or on q (or none).
bool matchScores(Value v, AttentionMatch &m, std::string &why) {
  double scale = 1.0;
  Value product = v;
  if (auto op = v.getDefiningOp(); op && isa<MulOp, DivOp>(op)) {
    bool scaled = eitherOrder(op, [&](Value a, Value b) {
      std::optional<double> c = splatValue(b);
      if (!c || !def<MatmulOp>(a)) return false;
      scale = isa<MulOp>(op) ? *c : 1.0 / *c;
      product = a;
      return true;
    });
    if (!scaled) return false;
  }
  auto qk = def<MatmulOp>(product);
  if (!qk || qk.getTransposeLhs() || !qk.getTransposeRhs()) return false;
  Value q = qk.getLhs();
  if (auto mul = def<MulOp>(q))  // scale folded into q
    eitherOrder(mul, [&](Value a, Value b) {
      std::optional<double> c = splatValue(b);
      if (!c) return false;
      scale *= *c;
      q = a;
      return true;
    });
  Value k = unrepeatKv(qk.getRhs(), why);
  if (!k || cast<RankedTensorType>(q.getType()).getRank() != 4) return false;
  m.q = q;
  m.k = k;
  m.scale = scale;
  return true;
}

/// Scores, optionally causally masked by select(-inf) or an added -inf mask.
bool matchMaskedScores(Value v, AttentionMatch &m, std::string &why) {
  if (auto sel = def<SelectOp>(v)) {
    auto cmp = def<CmpOp>(skipBroadcasts(sel.getCondition()));
    std::optional<double> fill = splatValue(sel.getFalseValue());
    if (!cmp || !fill || !std::isinf(*fill) || *fill > 0) return false;
    if (!isCausalCompare(cmp, why)) return false;
    m.causal = true;
    return matchScores(sel.getTrueValue(), m, why);
  }
  if (auto add = def<AddOp>(v)) {
    return eitherOrder(add, [&](Value s, Value mask) {
      if (!isCausalAdditiveMask(mask)) return false;
      m.causal = true;
      return matchScores(s, m, why);
    });
  }
  return matchScores(v, m, why);
}

/// softmax(S) over the last axis: exp(S - max) / sum(exp(S - max)).
bool matchSoftmax(Value v, Value &scores, std::string &why) {
  auto div = def<DivOp>(v);
  if (!div) return false;
  auto e = def<ExpOp>(div.getLhs());
  auto sum = def<ReduceSumOp>(perRowFactor(div.getRhs()));
  if (!e || !sum || sum.getInput() != div.getLhs()) return false;
  if (static_cast<int64_t>(sum.getAxis()) != sum.getInput().getType().getRank() - 1) {
    why = "the softmax is not over the key axis";
    return false;
  }
  auto sub = def<SubOp>(e.getInput());
  if (!sub) return false;
  auto max = def<ReduceMaxOp>(perRowFactor(sub.getRhs()));
  if (!max || max.getInput() != sub.getLhs()) return false;
  scores = sub.getLhs();
  return true;
}

FailureOr<AttentionMatch> matchAttention(MatmulOp root, std::string &why) {
  AttentionMatch m;
  Value scores;
  if (root.getTransposeLhs() || root.getTransposeRhs() ||
      !matchSoftmax(root.getLhs(), scores, why) || !matchMaskedScores(scores, m, why))
    return failure();
  std::string vWhy;
  m.v = unrepeatKv(root.getRhs(), vWhy);
  if (!m.v) {
    why = vWhy;
    return failure();
  }
  if (m.v.getType() != m.k.getType()) {
    why = "keys and values are grouped differently";
    return failure();
  }
  auto q = cast<RankedTensorType>(m.q.getType()), k = cast<RankedTensorType>(m.k.getType());
  if (k.getRank() != 4 || q.getDimSize(0) != k.getDimSize(0) || q.getDimSize(3) != k.getDimSize(3) ||
      q.getDimSize(1) % k.getDimSize(1) != 0 || (m.causal && q.getDimSize(2) != k.getDimSize(2))) {
    why = "the operands do not have attention's shapes";
    return failure();
  }
  return m;
}

Operation *rewriteAttention(MatmulOp root, const AttentionMatch &m, PatternRewriter &rewriter) {
  auto fused = rewriter.create<AttentionOp>(root.getLoc(), m.q, m.k, m.v, m.scale, m.causal);
  rewriter.replaceOp(root, fused.getResult());
  return fused;
}

struct TlFuseAttentionPass : tl::impl::TlFuseAttentionBase<TlFuseAttentionPass> {
  using TlFuseAttentionBase::TlFuseAttentionBase;
  void runOnOperation() override {
    FusionReport r(report, getArgument());
    RewritePatternSet patterns(&getContext());
    patterns.add<FusionPattern<MatmulOp, AttentionMatch>>(&getContext(), r, "attention",
                                                          matchAttention, rewriteAttention);
    if (failed(applyFusionPatterns(getOperation(), std::move(patterns)))) signalPassFailure();
  }
};

} // namespace
