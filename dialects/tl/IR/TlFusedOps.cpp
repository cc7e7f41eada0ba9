//===- TlFusedOps.cpp - fused ops: builders, verifiers, derivative rules -===//
#include "dialects/tl/IR/TlOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"

using namespace mlir;
using namespace mlir::tl;

namespace {

RankedTensorType typeOf(Value v) { return cast<RankedTensorType>(v.getType()); }

/// Per-row statistics saved for a backward pass (rstd, mean, log-sum-exp):
/// the shape of `t` without its last dimension, in f32 when `t` is bf16 or
/// f16. Stored in bf16 they would put ~3% error into every row's gradient.
RankedTensorType statsOf(RankedTensorType t) {
  Type e = t.getElementType();
  if (e.getIntOrFloatBitWidth() < 32) e = Float32Type::get(t.getContext());
  return RankedTensorType::get(t.getShape().drop_back(), e);
}

/// Attention's per-row statistics [B, H, T], from a query [B, H, T, D] or,
/// with `bthd`, [B, T, H, D].
RankedTensorType attentionStatsOf(RankedTensorType q, bool bthd) {
  RankedTensorType s = statsOf(q);
  if (!bthd || q.getRank() != 4) return s;
  return RankedTensorType::get({q.getDimSize(0), q.getDimSize(2), q.getDimSize(1)}, s.getElementType());
}

/// Checks the operands of a norm over the last axis: a `[D]` weight (and
/// bias) for an input `[..., D]`, and per-row statistics `[...]`.
LogicalResult verifyNorm(Operation *op, RankedTensorType input,
                         ArrayRef<Value> perChannel, ArrayRef<Value> perRow) {
  if (input.getRank() < 1)
    return op->emitOpError("input must have rank >= 1");
  int64_t d = input.getShape().back();
  auto channel = RankedTensorType::get({d}, input.getElementType());
  for (Value v : perChannel)
    if (typeOf(v) != channel)
      return op->emitOpError() << "weight and bias must be " << channel << ", got "
                               << v.getType();
  for (Value v : perRow)
    if (typeOf(v) != statsOf(input))
      return op->emitOpError() << "per-row statistics must be " << statsOf(input)
                               << ", got " << v.getType();
  return success();
}

} // namespace

//===----------------------------------------------------------------------===//
// Builders
//===----------------------------------------------------------------------===//

void RmsNormOp::build(OpBuilder &b, OperationState &state, Value input,
                      Value weight, double eps) {
  build(b, state, input.getType(), statsOf(typeOf(input)), input, weight,
        b.getF64FloatAttr(eps));
}

void AddRmsNormOp::build(OpBuilder &b, OperationState &state, Value lhs,
                         Value rhs, Value weight, double eps) {
  build(b, state, lhs.getType(), lhs.getType(), statsOf(typeOf(lhs)), lhs, rhs,
        weight, b.getF64FloatAttr(eps));
}

void LayerNormOp::build(OpBuilder &b, OperationState &state, Value input,
                        Value weight, Value bias, double eps) {
  RankedTensorType rows = statsOf(typeOf(input));
  build(b, state, input.getType(), rows, rows, input, weight, bias,
        b.getF64FloatAttr(eps));
}

void AttentionOp::build(OpBuilder &b, OperationState &state, Value query,
                        Value key, Value value, double scale, bool causal, bool bthd) {
  RankedTensorType q = typeOf(query);
  build(b, state, q, attentionStatsOf(q, bthd), query, key, value, b.getF64FloatAttr(scale),
        causal ? b.getUnitAttr() : UnitAttr(), bthd ? b.getUnitAttr() : UnitAttr());
}

void CrossEntropyOp::build(OpBuilder &b, OperationState &state, Value logits,
                           Value targets, IntegerAttr ignoreIndex, Type lossElementType) {
  RankedTensorType l = typeOf(logits);
  build(b, state, RankedTensorType::get({}, lossElementType ? lossElementType : l.getElementType()),
        statsOf(l), logits, targets, ignoreIndex);
}

//===----------------------------------------------------------------------===//
// Verifiers
//===----------------------------------------------------------------------===//

LogicalResult RmsNormOp::verify() {
  if (getResult().getType() != getInput().getType())
    return emitOpError("result must have the input's type");
  return verifyNorm(*this, getInput().getType(), {getWeight()}, {getRstd()});
}

LogicalResult AddRmsNormOp::verify() {
  Type t = getLhs().getType();
  if (getRhs().getType() != t || getSum().getType() != t ||
      getResult().getType() != t)
    return emitOpError("lhs, rhs, sum and result must share one type");
  return verifyNorm(*this, getLhs().getType(), {getWeight()}, {getRstd()});
}

LogicalResult LayerNormOp::verify() {
  if (getResult().getType() != getInput().getType())
    return emitOpError("result must have the input's type");
  return verifyNorm(*this, getInput().getType(), {getWeight(), getBias()},
                    {getMean(), getRstd()});
}

namespace {
/// Rotary embedding (and its transpose) of `x` [..., T, D] (with `bthd`:
/// [..., T, H, D]) with [positions, D] tables from row `offset` on.
LogicalResult verifyRope(Operation *op, RankedTensorType x, RankedTensorType c, Type sin,
                         int64_t offset, bool bthd) {
  if (!bthd && x.getRank() < 2)
    return op->emitOpError("input must have rank >= 2 ([..., T, D])");
  if (bthd && x.getRank() < 3)
    return op->emitOpError("input must have rank >= 3 ([..., T, H, D]) with bthd");
  int64_t t = x.getDimSize(x.getRank() - (bthd ? 3 : 2)), d = x.getShape().back();
  if (d % 2 != 0)
    return op->emitOpError() << "the rotated dimension (" << d << ") must be even";
  if (c != sin)
    return op->emitOpError("cos and sin tables must share one type");
  if (c.getRank() != 2 || c.getDimSize(1) != d || c.getElementType() != x.getElementType())
    return op->emitOpError() << "tables must be [positions, " << d << "] of "
                             << x.getElementType() << ", got " << c;
  if (offset < 0 || offset > c.getDimSize(0) - t) // no offset + t: it may overflow
    return op->emitOpError() << "positions from " << offset << " for " << t << " rows exceed the "
                             << c.getDimSize(0) << "-row tables";
  return success();
}

/// Attention's query [B, heads, T, D], key and value [B, kv_heads, S, D],
/// and per-row statistics (lse) [B, heads, T]; with `bthd` query [B, T,
/// heads, D], key and value [B, S, kv_heads, D].
LogicalResult verifyAttention(Operation *op, RankedTensorType q, RankedTensorType k, Type v,
                              bool causal, bool bthd, Type lse) {
  if (q.getRank() != 4 || k.getRank() != 4)
    return op->emitOpError(bthd ? "query, key and value must be [B, T, heads, D] (bthd)"
                                : "query, key and value must be [B, heads, T, D]");
  if (k != v)
    return op->emitOpError("key and value must share one type");
  if (q.getElementType() != k.getElementType() || q.getDimSize(0) != k.getDimSize(0) ||
      q.getDimSize(3) != k.getDimSize(3))
    return op->emitOpError("query and key differ in batch, head size or element type");
  const int headDim = bthd ? 2 : 1, seqDim = bthd ? 1 : 2;
  int64_t heads = q.getDimSize(headDim), kvHeads = k.getDimSize(headDim);
  if (heads % kvHeads != 0)
    return op->emitOpError() << "key/value heads (" << kvHeads
                             << ") must divide query heads (" << heads << ")";
  if (causal && q.getDimSize(seqDim) != k.getDimSize(seqDim))
    return op->emitOpError("causal attention needs as many keys as queries");
  if (lse != attentionStatsOf(q, bthd))
    return op->emitOpError() << "the log-sum-exp must be " << attentionStatsOf(q, bthd) << ", got " << lse;
  return success();
}

/// Cross-entropy's logits [N, V], targets [N] and lse [N].
LogicalResult verifyCrossEntropy(Operation *op, RankedTensorType l, RankedTensorType t, Type lse) {
  if (l.getRank() != 2 || t.getRank() != 1 || t.getDimSize(0) != l.getDimSize(0))
    return op->emitOpError() << "logits must be [N, V] and targets [N], got " << l << " and " << t;
  if (lse != statsOf(l))
    return op->emitOpError() << "the log-sum-exp must be " << statsOf(l) << ", got " << lse;
  return success();
}
} // namespace

LogicalResult RopeOp::verify() {
  return verifyRope(*this, getInput().getType(), getCos().getType(), getSin().getType(),
                    static_cast<int64_t>(getOffset()), getBthd());
}

LogicalResult RopeGradOp::verify() {
  return verifyRope(*this, getGrad().getType(), getCos().getType(), getSin().getType(),
                    static_cast<int64_t>(getOffset()), getBthd());
}

LogicalResult AttentionOp::verify() {
  RankedTensorType q = getQuery().getType();
  if (failed(verifyAttention(*this, q, getKey().getType(), getValue().getType(), getCausal(),
                             getBthd(), getLse().getType())))
    return failure();
  if (getResult().getType() != q)
    return emitOpError() << "the result must be " << q;
  return success();
}

LogicalResult AttentionGradOp::verify() {
  return verifyAttention(*this, getQuery().getType(), getKey().getType(), getValue().getType(),
                         getCausal(), getBthd(), getLse().getType());
}

LogicalResult RmsNormGradOp::verify() {
  if (Value r = getResidualGrad(); r && r.getType() != getInput().getType())
    return emitOpError() << "the residual gradient must be " << getInput().getType() << ", got " << r.getType();
  return verifyNorm(*this, getInput().getType(), {getWeight()}, {getRstd()});
}

LogicalResult LayerNormGradOp::verify() {
  return verifyNorm(*this, getInput().getType(), {getWeight()}, {getMean(), getRstd()});
}

namespace {
/// A cross-entropy loss (or its cotangent): a scalar of the logits' type, or f32.
bool isLossType(Type t, RankedTensorType logits) {
  return t == RankedTensorType::get({}, logits.getElementType()) ||
         t == RankedTensorType::get({}, Float32Type::get(t.getContext()));
}
} // namespace

LogicalResult CrossEntropyGradOp::verify() {
  if (!isLossType(getGrad().getType(), getLogits().getType()))
    return emitOpError("the cotangent must be a scalar of the logits' type or f32");
  return verifyCrossEntropy(*this, getLogits().getType(), getTargets().getType(), getLse().getType());
}

LogicalResult CrossEntropyOp::verify() {
  RankedTensorType l = getLogits().getType();
  if (failed(verifyCrossEntropy(*this, l, getTargets().getType(), getLse().getType())))
    return failure();
  if (!isLossType(getLoss().getType(), l))
    return emitOpError("the loss must be a scalar of the logits' type or f32");
  return success();
}

LogicalResult FusionOp::verify() {
  Block &body = getBody().front();
  if (body.getArgumentTypes() != getInputs().getTypes())
    return emitOpError("body arguments must match the operands' types");
  auto yield = cast<YieldOp>(body.getTerminator());
  if (yield.getValues().getTypes() != getResultTypes())
    return emitOpError("yielded values must match the results' types");
  return success();
}

//===----------------------------------------------------------------------===//
// Derivative rules: each forward op's rule emits its fused backward op.
// A result that does not reach the loss has a null cotangent.
//===----------------------------------------------------------------------===//

// Results after the first (two for add_rmsnorm) are saved statistics.
bool RmsNormOp::isDifferentiableResult(unsigned index) { return index == 0; }
bool AddRmsNormOp::isDifferentiableResult(unsigned index) { return index < 2; }
bool LayerNormOp::isDifferentiableResult(unsigned index) { return index == 0; }
bool AttentionOp::isDifferentiableResult(unsigned index) { return index == 0; }
bool CrossEntropyOp::isDifferentiableResult(unsigned index) { return index == 0; }

LogicalResult RmsNormOp::buildVjp(OpBuilder &b, ArrayRef<Value> cot,
                                  SmallVectorImpl<Value> &out) {
  auto grad = b.create<RmsNormGradOp>(getLoc(), getInput().getType(),
                                      getWeight().getType(), cot[0], getInput(),
                                      getWeight(), getRstd(), Value());
  out.append({grad.getInputGrad(), grad.getWeightGrad()});
  return success();
}

LogicalResult AddRmsNormOp::buildVjp(OpBuilder &b, ArrayRef<Value> cot,
                                     SmallVectorImpl<Value> &out) {
  Value dsum = cot[0], dweight;
  if (Value gy = cot[1]) {
    // The sum's own cotangent is added inside the norm's backward kernel.
    auto grad = b.create<RmsNormGradOp>(getLoc(), getSum().getType(),
                                        getWeight().getType(), gy, getSum(),
                                        getWeight(), getRstd(), dsum);
    dsum = grad.getInputGrad();
    dweight = grad.getWeightGrad();
  } else {
    RankedTensorType w = getWeight().getType();
    dweight = b.create<ConstantOp>(
        getLoc(), DenseElementsAttr::get(w, b.getFloatAttr(w.getElementType(), 0.0)));
  }
  out.append({dsum, dsum, dweight});
  return success();
}

LogicalResult LayerNormOp::buildVjp(OpBuilder &b, ArrayRef<Value> cot,
                                    SmallVectorImpl<Value> &out) {
  auto grad = b.create<LayerNormGradOp>(
      getLoc(), getInput().getType(), getWeight().getType(),
      getBias().getType(), cot[0], getInput(), getWeight(), getMean(), getRstd());
  out.append({grad.getInputGrad(), grad.getWeightGrad(), grad.getBiasGrad()});
  return success();
}

bool RopeOp::isDifferentiableOperand(unsigned index) { return index == 0; }

LogicalResult RopeOp::buildVjp(OpBuilder &b, ArrayRef<Value> cot,
                               SmallVectorImpl<Value> &out) {
  out.push_back(b.create<RopeGradOp>(getLoc(), cot[0].getType(), cot[0], getCos(),
                                     getSin(), getOffset(), getBthd()));
  out.append({Value(), Value()});
  return success();
}

LogicalResult AttentionOp::buildVjp(OpBuilder &b, ArrayRef<Value> cot,
                                    SmallVectorImpl<Value> &out) {
  auto grad = b.create<AttentionGradOp>(
      getLoc(), getQuery().getType(), getKey().getType(), getValue().getType(),
      cot[0], getQuery(), getKey(), getValue(), getResult(), getLse(),
      getScaleAttr(), getCausalAttr(), getBthdAttr());
  out.append({grad.getQueryGrad(), grad.getKeyGrad(), grad.getValueGrad()});
  return success();
}

LogicalResult CrossEntropyOp::buildVjp(OpBuilder &b, ArrayRef<Value> cot,
                                       SmallVectorImpl<Value> &out) {
  out.push_back(b.create<CrossEntropyGradOp>(
      getLoc(), getLogits().getType(), cot[0], getLogits(), getTargets(),
      getLse(), getIgnoreIndexAttr()));
  out.push_back(Value());
  return success();
}

LogicalResult SwiGluOp::buildVjp(OpBuilder &b, ArrayRef<Value> cot,
                                 SmallVectorImpl<Value> &out) {
  auto grad = b.create<SwiGluGradOp>(getLoc(), getGate().getType(), getUp().getType(),
                                     cot[0], getGate(), getUp());
  out.append({grad.getGateGrad(), grad.getUpGrad()});
  return success();
}
