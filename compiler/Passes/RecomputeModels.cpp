//===- RecomputeModels.cpp - FLOPs and recomputation rules of tl ops ------===//
//
// The cost model is the usual one: a multiply-add is two FLOPs, GEMMs and
// attention dominate, elementwise ops count a FLOP per element, data
// movement (transposes, broadcasts, gathers) none. Attention is never
// recomputed: its backward needs the forward's output and log-sum-exp, and a
// second forward of attention costs as much as a third of its backward.
//
//===----------------------------------------------------------------------===//
#include "compiler/Passes/RecomputeInterface.h"

#include "dialects/tl/IR/TlOps.h"

#include "compiler/Passes/RecomputeInterface.cpp.inc"

namespace mlir::tl {
namespace {

int64_t elements(Value v) { return cast<RankedTensorType>(v.getType()).getNumElements(); }

/// The larger of the op's operands and results: what an elementwise op or a
/// reduction touches.
int64_t largest(Operation *op) {
  int64_t n = 0;
  for (Value v : op->getOperands()) n = std::max(n, elements(v));
  for (Value v : op->getResults()) n = std::max(n, elements(v));
  return n;
}

/// An op recomputed by cloning it, costing `PerElement` FLOPs per element it
/// touches (0: data movement).
template <typename OpT, int PerElement>
struct CloneModel : RecomputeOpInterface::ExternalModel<CloneModel<OpT, PerElement>, OpT> {
  int64_t getFlops(Operation *op) const { return PerElement * largest(op); }
};

/// An op whose FLOPs count toward the step but which is never recomputed:
/// backward ops (they are not saved), and ops without a cheaper rule.
template <typename OpT, int PerElement>
struct KeptModel : RecomputeOpInterface::ExternalModel<KeptModel<OpT, PerElement>, OpT> {
  int64_t getFlops(Operation *op) const { return PerElement * largest(op); }
  bool canRecompute(Operation *, unsigned) const { return false; }
};

struct MatmulModel : RecomputeOpInterface::ExternalModel<MatmulModel, MatmulOp> {
  int64_t getFlops(Operation *op) const {
    auto m = cast<MatmulOp>(op);
    auto lhs = m.getLhs().getType();
    int64_t k = lhs.getDimSize(lhs.getRank() - (m.getTransposeLhs() ? 2 : 1));
    return 2 * elements(m.getResult()) * k;
  }
};

/// Multiply-adds of QK^T and PV over the unmasked half of a causal square.
int64_t attentionForwardFlops(AttentionOp a) {
  auto q = a.getQuery().getType();
  int64_t rank = q.getRank(), s = a.getKey().getType().getDimSize(rank - 2);
  int64_t flops = 4 * elements(a.getQuery()) * s;
  return a.getCausal() && s == q.getDimSize(rank - 2) ? flops / 2 : flops;
}

struct AttentionModel : RecomputeOpInterface::ExternalModel<AttentionModel, AttentionOp> {
  int64_t getFlops(Operation *op) const { return attentionForwardFlops(cast<AttentionOp>(op)); }
  bool canRecompute(Operation *, unsigned) const { return false; }
};

/// The backward of attention: five matmuls of the forward's size (dV, dP,
/// dS->dQ, dK, and S again), 2.5 forwards, as FlashAttention-2 counts it.
struct AttentionGradModel : RecomputeOpInterface::ExternalModel<AttentionGradModel, AttentionGradOp> {
  int64_t getFlops(Operation *op) const {
    auto g = cast<AttentionGradOp>(op);
    auto q = g.getQuery().getType();
    int64_t rank = q.getRank(), s = g.getKey().getType().getDimSize(rank - 2);
    int64_t forward = 4 * elements(g.getQuery()) * s;
    if (g.getCausal() && s == q.getDimSize(rank - 2)) forward /= 2;
    return forward * 5 / 2;
  }
  bool canRecompute(Operation *, unsigned) const { return false; }
};

/// The normalised output may be recomputed (from the input and the weight);
/// the statistics are kept.
struct RmsNormModel : RecomputeOpInterface::ExternalModel<RmsNormModel, RmsNormOp> {
  int64_t getFlops(Operation *op) const { return 4 * elements(op->getOperand(0)); }
  bool canRecompute(Operation *, unsigned index) const { return index == 0; }
};

struct LayerNormModel : RecomputeOpInterface::ExternalModel<LayerNormModel, LayerNormOp> {
  int64_t getFlops(Operation *op) const { return 7 * elements(op->getOperand(0)); }
  bool canRecompute(Operation *, unsigned index) const { return index == 0; }
};

/// `sum` is recomputed as `lhs + rhs`; the normalised output as an RMSNorm
/// of `sum`, which is what the backward's rmsnorm_grad differentiates.
struct AddRmsNormModel : RecomputeOpInterface::ExternalModel<AddRmsNormModel, AddRmsNormOp> {
  int64_t getFlops(Operation *op) const { return 5 * elements(op->getOperand(0)); }
  bool canRecompute(Operation *, unsigned index) const { return index < 2; }
  SmallVector<Value> getRecomputeInputs(Operation *op, unsigned index) const {
    auto n = cast<AddRmsNormOp>(op);
    if (index == 0) return {n.getLhs(), n.getRhs()};
    return {n.getSum(), n.getWeight()};
  }
  Value buildRecompute(Operation *op, OpBuilder &b, unsigned index, ValueRange inputs) const {
    auto n = cast<AddRmsNormOp>(op);
    if (index == 0) return b.create<AddOp>(n.getLoc(), inputs[0], inputs[1]).getResult();
    return b.create<RmsNormOp>(n.getLoc(), inputs[0], inputs[1], n.getEps().convertToDouble()).getResult();
  }
  int64_t getRecomputeFlops(Operation *op, unsigned index) const {
    return (index == 0 ? 1 : 4) * elements(op->getOperand(0));
  }
};

template <template <typename, int> class Model, int PerElement, typename... Ops>
void attachAll(MLIRContext &context) {
  (Ops::template attachInterface<Model<Ops, PerElement>>(context), ...);
}

} // namespace

void attachRecomputeModels(MLIRContext &context) {
  context.getOrLoadDialect<TLDialect>();
  attachAll<CloneModel, 1, NegOp, ExpOp, LogOp, SqrtOp, RsqrtOp, SigmoidOp, SiluOp, TanhOp, SinOp, CosOp,
            PowOp, AddOp, SubOp, MulOp, DivOp, MaxOp, MinOp, CmpOp, SelectOp, ConvertOp, ReduceSumOp,
            ReduceMaxOp, ReduceMeanOp>(context);
  attachAll<CloneModel, 0, ConstantOp, IotaOp, BroadcastOp, ReshapeOp, TransposeOp, SliceOp, ConcatOp,
            GatherOp>(context);
  attachAll<CloneModel, 3, RopeOp, SwiGluOp>(context);
  attachAll<KeptModel, 3, RmsNormGradOp, LayerNormGradOp, RopeGradOp, SwiGluGradOp, CrossEntropyOp,
            CrossEntropyGradOp, ScatterAddOp>(context);
  MatmulOp::attachInterface<MatmulModel>(context);
  AttentionOp::attachInterface<AttentionModel>(context);
  AttentionGradOp::attachInterface<AttentionGradModel>(context);
  RmsNormOp::attachInterface<RmsNormModel>(context);
  LayerNormOp::attachInterface<LayerNormModel>(context);
  AddRmsNormOp::attachInterface<AddRmsNormModel>(context);
}

int64_t flopsOf(Operation *op) {
  if (auto model = dyn_cast<RecomputeOpInterface>(op)) return model.getFlops();
  int64_t n = 0;
  for (Value v : op->getResults())
    if (auto t = dyn_cast<RankedTensorType>(v.getType())) n += t.getNumElements();
  return n;
}

} // namespace mlir::tl
