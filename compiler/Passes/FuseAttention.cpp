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
  SmallVector<int64_t> merged{batch, kv * group, s, d};
  if (inner.getResult().getType().getShape() != ArrayRef<int64_t>(grouped) ||
      mid.getShape() != ArrayRef<int64_t>(repeated) ||
      b.getDims() != ArrayRef<int64_t>{0, 1, 2, 3, 4} ||
      outer.getResult().getType().getShape() != ArrayRef<int64_t>(merged)) {
    why = "the key/value heads are repeated in another order than query head "
          "h -> KV head h / G";
    return {};
  }
  return inner.getInput();
}

/// The causal mask `row >= col` built from two iotas over `[T, T]`.
bool isCausalCompare(CmpOp cmp, std::string &why) {
  auto lhs = def<IotaOp>(cmp.getLhs()), rhs = def<IotaOp>(cmp.getRhs());
  if (!lhs || !rhs) {
    why = "the mask does not compare row and column indices";
    return false;
  }
  int64_t la = lhs.getAxis(), ra = rhs.getAxis();
  bool causal = (cmp.getPredicate() == CmpPredicate::ge && la == 0 && ra == 1) ||
                (cmp.getPredicate() == CmpPredicate::le && la == 1 && ra == 0);
  if (!causal) why = "the mask is not the causal mask row >= column";
  return causal;
}

/// An additive mask: 0 where col <= row, -inf above the diagonal.
bool isCausalAdditiveMask(Value v, std::string &why) {
  Value plane = trailingPlane(v, why);
  auto c = plane ? def<ConstantOp>(plane) : ConstantOp();
  auto dense = c ? dyn_cast<DenseFPElementsAttr>(c.getValue()) : DenseFPElementsAttr();
  if (!dense || dense.getType().getRank() != 2) return false;
  int64_t t = dense.getType().getDimSize(1), i = 0;
  for (APFloat x : dense.getValues<APFloat>()) {
    int64_t row = i / t, col = i % t;
    ++i;
    bool hidden = x.isInfinity() && x.isNegative();
    if ((col > row) != hidden || (!hidden && !x.isZero())) {
      why = "the added mask is not the causal mask (-inf exactly above the diagonal)";
      return false;
    }
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
    if (!scaled) {
      why = "the scores are scaled by something other than a constant";
      return false;
    }
  }
  auto qk = def<MatmulOp>(product);
  if (!qk || qk.getTransposeLhs() || !qk.getTransposeRhs()) {
    why = "the scores are not q k^T (a matmul with only the keys transposed)";
    return false;
  }
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
  if (!k) return false;
  if (cast<RankedTensorType>(q.getType()).getRank() != 4) {
    why = "the queries are not a [batch, heads, seq, head_dim] tensor";
    return false;
  }
  m.q = q;
  m.k = k;
  m.scale = scale;
  return true;
}

/// Scores, optionally causally masked by select(-inf) or an added -inf mask.
bool matchMaskedScores(Value v, AttentionMatch &m, std::string &why) {
  if (auto sel = def<SelectOp>(v)) {
    Value plane = trailingPlane(sel.getCondition(), why);
    auto cmp = plane ? def<CmpOp>(plane) : CmpOp();
    std::optional<double> fill = splatValue(sel.getFalseValue());
    if (!cmp || !fill || !std::isinf(*fill) || *fill > 0) {
      if (why.empty()) why = "the scores are masked by something other than a causal select of -inf";
      return false;
    }
    if (!isCausalCompare(cmp, why)) return false;
    m.causal = true;
    return matchScores(sel.getTrueValue(), m, why);
  }
  if (auto add = def<AddOp>(v)) {
    return eitherOrder(add, [&](Value s, Value mask) {
      if (!isCausalAdditiveMask(mask, why)) return false;
      m.causal = true;
      return matchScores(s, m, why);
    });
  }
  return matchScores(v, m, why);
}

/// Whether `r` reduces `of` over its last axis.
template <typename ReduceOp> bool overLastAxis(ReduceOp r, Value of) {
  return r && r.getInput() == of &&
         static_cast<int64_t>(r.getAxis()) == r.getInput().getType().getRank() - 1;
}

/// softmax(S) over the last axis: exp(S - max) / sum(exp(S - max)).
/// The candidate: a division of an exp.
bool matchSoftmax(Value v, Value &scores, std::string &why) {
  auto div = def<DivOp>(v);
  auto e = div ? def<ExpOp>(div.getLhs()) : ExpOp();
  if (!e) return false;
  Value rowSum = perRowFactor(div.getRhs(), why);
  if (!rowSum) {
    if (why.empty()) why = "the exp is not divided by a per-row value";
    return false;
  }
  auto sum = def<ReduceSumOp>(rowSum);
  if (!sum || sum.getInput() != div.getLhs()) {
    why = "the exp is not divided by its own sum";
    return false;
  }
  if (!overLastAxis(sum, div.getLhs())) {
    why = "the softmax is not over the key axis";
    return false;
  }
  auto sub = def<SubOp>(e.getInput());
  Value rowMax = sub ? perRowFactor(sub.getRhs(), why) : Value();
  auto max = rowMax ? def<ReduceMaxOp>(rowMax) : ReduceMaxOp();
  if (!max || !overLastAxis(max, sub.getLhs())) {
    if (why.empty())
      why = "the exp is not of the scores minus their maximum over the key axis";
    return false;
  }
  scores = sub.getLhs();
  return true;
}

FailureOr<AttentionMatch> matchAttention(MatmulOp root, std::string &why) {
  AttentionMatch m;
  Value scores;
  if (!matchSoftmax(root.getLhs(), scores, why)) return failure();
  if (root.getTransposeLhs() || root.getTransposeRhs()) {
    why = "the probabilities or the values are transposed";
    return failure();
  }
  if (!matchMaskedScores(scores, m, why)) return failure();
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
    if (failed(applyFusionPatterns(getOperation(), std::move(patterns), r))) signalPassFailure();
  }
};

} // namespace
