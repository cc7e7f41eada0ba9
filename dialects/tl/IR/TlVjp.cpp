//===- TlVjp.cpp - derivative rules (vector-Jacobian products) of tl ops -===//
//
// Each rule receives the cotangent `g` of the op's result and builds the
// cotangents of its operands with ordinary tl ops, reusing the forward values
// (operands and result) rather than recomputing them. Notation: x, y are
// operands, r the result, g its cotangent.
//
//===----------------------------------------------------------------------===//
#include "dialects/tl/IR/TlOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"

using namespace mlir;
using namespace mlir::tl;

namespace {

/// Emits ops at one location; short names keep the rules close to the math.
struct Emitter {
  OpBuilder &b;
  Location loc;

  Value splat(Type type, double v) {
    auto t = cast<RankedTensorType>(type);
    auto attr = DenseElementsAttr::get(
        t, b.getFloatAttr(t.getElementType(), v));
    return b.create<ConstantOp>(loc, attr);
  }
  Value zeros(Type type) { return splat(type, 0.0); }
  Value add(Value x, Value y) { return b.create<AddOp>(loc, x, y); }
  Value sub(Value x, Value y) { return b.create<SubOp>(loc, x, y); }
  Value mul(Value x, Value y) { return b.create<MulOp>(loc, x, y); }
  Value div(Value x, Value y) { return b.create<DivOp>(loc, x, y); }
  Value neg(Value x) { return b.create<NegOp>(loc, x); }
  Value scale(Value x, double c) { return mul(x, splat(x.getType(), c)); }
  Value select(Value c, Value x, Value y) {
    return b.create<SelectOp>(loc, x.getType(), c, x, y);
  }
  Value cmp(CmpPredicate p, Value x, Value y) {
    return b.create<CmpOp>(loc, p, x, y);
  }
  Value reshape(Value x, Type type) {
    return x.getType() == type ? x : b.create<ReshapeOp>(loc, type, x);
  }
  Value transpose(Value x, ArrayRef<int64_t> perm) {
    return b.create<TransposeOp>(loc, x, perm);
  }
  Value swapLastTwo(Value x) {
    int64_t r = cast<RankedTensorType>(x.getType()).getRank();
    SmallVector<int64_t> perm = llvm::to_vector(llvm::seq<int64_t>(0, r));
    std::swap(perm[r - 1], perm[r - 2]);
    return transpose(x, perm);
  }
  Value matmul(Value x, Value y, bool tx, bool ty) {
    return b.create<MatmulOp>(loc, x, y, tx, ty);
  }
  /// Broadcasts `x`, whose shape is `to` without `axis`, back along `axis`.
  Value broadcastAlong(Value x, RankedTensorType to, int64_t axis) {
    SmallVector<int64_t> dims;
    for (int64_t d = 0; d < to.getRank(); ++d)
      if (d != axis) dims.push_back(d);
    return b.create<BroadcastOp>(loc, to, x, dims);
  }
};

RankedTensorType typeOf(Value v) { return cast<RankedTensorType>(v.getType()); }

} // namespace

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

#define TL_UNARY_VJP(OP, BODY)                                                 \
  LogicalResult OP::buildVjp(OpBuilder &builder, ArrayRef<Value> cot,          \
                             SmallVectorImpl<Value> &out) {                    \
    Emitter e{builder, getLoc()};                                              \
    Value g = cot[0], x = getInput(), r = getResult();                         \
    (void)x, (void)r;                                                          \
    out.push_back(BODY);                                                       \
    return success();                                                          \
  }

TL_UNARY_VJP(NegOp, e.neg(g))
TL_UNARY_VJP(ExpOp, e.mul(g, r))
TL_UNARY_VJP(LogOp, e.div(g, x))
// d sqrt(x) = 1 / (2 sqrt(x))
TL_UNARY_VJP(SqrtOp, e.div(e.scale(g, 0.5), r))
// d x^(-1/2) = -1/2 x^(-3/2) = -1/2 r^3
TL_UNARY_VJP(RsqrtOp, e.mul(e.scale(g, -0.5), e.mul(r, e.mul(r, r))))
// d sigmoid = s (1 - s)
TL_UNARY_VJP(SigmoidOp, e.mul(g, e.mul(r, e.sub(e.splat(r.getType(), 1.0), r))))
// d (x s(x)) = s + x s (1 - s) = s (1 + x (1 - s))
TL_UNARY_VJP(SiluOp, [&] {
  Value s = builder.create<SigmoidOp>(getLoc(), x);
  Value one = e.splat(x.getType(), 1.0);
  return e.mul(g, e.mul(s, e.add(one, e.mul(x, e.sub(one, s)))));
}())
// d tanh = 1 - r^2
TL_UNARY_VJP(TanhOp, e.mul(g, e.sub(e.splat(r.getType(), 1.0), e.mul(r, r))))
TL_UNARY_VJP(SinOp, e.mul(g, builder.create<CosOp>(getLoc(), x)))
TL_UNARY_VJP(CosOp, e.neg(e.mul(g, builder.create<SinOp>(getLoc(), x))))
#undef TL_UNARY_VJP

// d x^c = c x^(c-1)
LogicalResult PowOp::buildVjp(OpBuilder &builder, ArrayRef<Value> cot,
                              SmallVectorImpl<Value> &out) {
  Emitter e{builder, getLoc()};
  double c = getExponent().convertToDouble();
  Value g = cot[0], x = getInput();
  Value d = c == 2.0 ? x
                     : builder.create<PowOp>(getLoc(), x,
                                             builder.getF64FloatAttr(c - 1.0))
                           .getResult();
  out.push_back(e.mul(g, e.scale(d, c)));
  return success();
}

LogicalResult AddOp::buildVjp(OpBuilder &, ArrayRef<Value> cot,
                              SmallVectorImpl<Value> &out) {
  out.append({cot[0], cot[0]});
  return success();
}

LogicalResult SubOp::buildVjp(OpBuilder &builder, ArrayRef<Value> cot,
                              SmallVectorImpl<Value> &out) {
  Emitter e{builder, getLoc()};
  out.append({cot[0], e.neg(cot[0])});
  return success();
}

LogicalResult MulOp::buildVjp(OpBuilder &builder, ArrayRef<Value> cot,
                              SmallVectorImpl<Value> &out) {
  Emitter e{builder, getLoc()};
  out.append({e.mul(cot[0], getRhs()), e.mul(cot[0], getLhs())});
  return success();
}

// d(x/y) = g/y, -g x/y^2 = -(g/y) r
LogicalResult DivOp::buildVjp(OpBuilder &builder, ArrayRef<Value> cot,
                              SmallVectorImpl<Value> &out) {
  Emitter e{builder, getLoc()};
  Value gy = e.div(cot[0], getRhs());
  out.append({gy, e.neg(e.mul(gy, getResult()))});
  return success();
}

// The gradient goes to the chosen operand; ties go to the left one.
static void minMaxVjp(Emitter &e, CmpPredicate leftWins, Value g, Value x,
                      Value y, SmallVectorImpl<Value> &out) {
  Value left = e.cmp(leftWins, x, y), zero = e.zeros(g.getType());
  out.append({e.select(left, g, zero), e.select(left, zero, g)});
}
LogicalResult MaxOp::buildVjp(OpBuilder &builder, ArrayRef<Value> cot,
                              SmallVectorImpl<Value> &out) {
  Emitter e{builder, getLoc()};
  minMaxVjp(e, CmpPredicate::ge, cot[0], getLhs(), getRhs(), out);
  return success();
}
LogicalResult MinOp::buildVjp(OpBuilder &builder, ArrayRef<Value> cot,
                              SmallVectorImpl<Value> &out) {
  Emitter e{builder, getLoc()};
  minMaxVjp(e, CmpPredicate::le, cot[0], getLhs(), getRhs(), out);
  return success();
}

LogicalResult SelectOp::buildVjp(OpBuilder &builder, ArrayRef<Value> cot,
                                 SmallVectorImpl<Value> &out) {
  Emitter e{builder, getLoc()};
  Value zero = e.zeros(cot[0].getType());
  out.append({Value(), e.select(getCondition(), cot[0], zero),
              e.select(getCondition(), zero, cot[0])});
  return success();
}

// Float-to-float conversions pass the cotangent back in the source type.
LogicalResult ConvertOp::buildVjp(OpBuilder &builder, ArrayRef<Value> cot,
                                  SmallVectorImpl<Value> &out) {
  if (!isDifferentiableOperand(0)) {
    out.push_back(Value());
    return success();
  }
  out.push_back(
      builder.create<ConvertOp>(getLoc(), getInput().getType(), cot[0]));
  return success();
}

//===----------------------------------------------------------------------===//
// Shape and data movement
//===----------------------------------------------------------------------===//

// Sum the cotangent over every result dimension the operand did not have or
// had as 1, then restore the operand's shape.
LogicalResult BroadcastOp::buildVjp(OpBuilder &builder, ArrayRef<Value> cot,
                                    SmallVectorImpl<Value> &out) {
  RankedTensorType in = getInput().getType(), res = getResult().getType();
  SmallVector<bool> keep(res.getRank(), false);
  for (auto [i, d] : llvm::enumerate(getDims()))
    keep[d] = in.getDimSize(i) == res.getDimSize(d);
  Value g = cot[0];
  for (int64_t d = res.getRank() - 1; d >= 0; --d)
    if (!keep[d]) g = builder.create<ReduceSumOp>(getLoc(), g, d);
  Emitter e{builder, getLoc()};
  out.push_back(e.reshape(g, in));
  return success();
}

LogicalResult ReduceSumOp::buildVjp(OpBuilder &builder, ArrayRef<Value> cot,
                                    SmallVectorImpl<Value> &out) {
  Emitter e{builder, getLoc()};
  out.push_back(e.broadcastAlong(cot[0], getInput().getType(), getAxis()));
  return success();
}

LogicalResult ReduceMeanOp::buildVjp(OpBuilder &builder, ArrayRef<Value> cot,
                                     SmallVectorImpl<Value> &out) {
  Emitter e{builder, getLoc()};
  RankedTensorType in = getInput().getType();
  double n = static_cast<double>(in.getDimSize(getAxis()));
  out.push_back(e.broadcastAlong(e.scale(cot[0], 1.0 / n), in, getAxis()));
  return success();
}

// The cotangent is shared equally by the elements equal to the maximum (as
// torch.amax does), so ties never double-count.
LogicalResult ReduceMaxOp::buildVjp(OpBuilder &builder, ArrayRef<Value> cot,
                                    SmallVectorImpl<Value> &out) {
  Emitter e{builder, getLoc()};
  RankedTensorType in = getInput().getType();
  int64_t axis = getAxis();
  Value isMax = e.cmp(CmpPredicate::eq, getInput(),
                      e.broadcastAlong(getResult(), in, axis));
  Value mask = builder.create<ConvertOp>(getLoc(), in, isMax);
  Value ties = builder.create<ReduceSumOp>(getLoc(), mask, axis);
  out.push_back(e.mul(mask, e.broadcastAlong(e.div(cot[0], ties), in, axis)));
  return success();
}

// C = op(A) op(B). With op = identity: dA = G B^T, dB = A^T G; the transpose
// flags permute these. A rank-2 B shared by every batch gets the batch-summed
// gradient by folding the batch into the rows.
LogicalResult MatmulOp::buildVjp(OpBuilder &builder, ArrayRef<Value> cot,
                                 SmallVectorImpl<Value> &out) {
  Emitter e{builder, getLoc()};
  Value g = cot[0], a = getLhs(), b = getRhs();
  bool ta = getTransposeLhs(), tb = getTransposeRhs();
  bool shared = typeOf(b).getRank() == 2 && typeOf(a).getRank() > 2;

  Value da;
  if (!ta) {
    da = e.matmul(g, b, false, !tb);  // G B^T or G B
  } else if (!shared) {
    da = tb ? e.matmul(b, g, true, true)   // B^T G^T
            : e.matmul(b, g, false, true); // B G^T
  } else {  // B can't lead a batched product: transpose G op(B)^T instead
    da = e.swapLastTwo(e.matmul(g, b, false, !tb));
  }

  Value db;
  if (!shared) {
    db = tb ? e.matmul(g, a, true, ta)    // G^T op(A)... as [N, K]
            : e.matmul(a, g, !ta, false); // op(A)^T G
  } else {
    Value rows = ta ? e.swapLastTwo(a) : a;  // [..., M, K]
    RankedTensorType at = typeOf(rows);
    int64_t k = at.getShape().back();
    int64_t m = at.getNumElements() / k, n = typeOf(g).getShape().back();
    Value af = e.reshape(rows, RankedTensorType::get({m, k}, at.getElementType()));
    Value gf = e.reshape(g, RankedTensorType::get({m, n}, at.getElementType()));
    db = tb ? e.matmul(gf, af, true, false)   // [N, K]
            : e.matmul(af, gf, true, false);  // [K, N]
  }
  out.append({da, db});
  return success();
}

LogicalResult ReshapeOp::buildVjp(OpBuilder &builder, ArrayRef<Value> cot,
                                  SmallVectorImpl<Value> &out) {
  Emitter e{builder, getLoc()};
  out.push_back(e.reshape(cot[0], getInput().getType()));
  return success();
}

LogicalResult TransposeOp::buildVjp(OpBuilder &builder, ArrayRef<Value> cot,
                                    SmallVectorImpl<Value> &out) {
  Emitter e{builder, getLoc()};
  ArrayRef<int64_t> perm = getPerm();
  SmallVector<int64_t> inverse(perm.size());
  for (auto [i, p] : llvm::enumerate(perm)) inverse[p] = i;
  out.push_back(e.transpose(cot[0], inverse));
  return success();
}

// Pads the cotangent with zeros back to the operand's extent.
LogicalResult SliceOp::buildVjp(OpBuilder &builder, ArrayRef<Value> cot,
                                SmallVectorImpl<Value> &out) {
  Emitter e{builder, getLoc()};
  RankedTensorType in = getInput().getType();
  int64_t axis = getAxis(), start = getStart(), size = getSize();
  auto zerosOf = [&](int64_t n) {
    SmallVector<int64_t> shape(in.getShape());
    shape[axis] = n;
    return e.zeros(RankedTensorType::get(shape, in.getElementType()));
  };
  SmallVector<Value> parts;
  if (start > 0) parts.push_back(zerosOf(start));
  parts.push_back(cot[0]);
  int64_t after = in.getDimSize(axis) - start - size;
  if (after > 0) parts.push_back(zerosOf(after));
  out.push_back(parts.size() == 1
                    ? parts[0]
                    : builder.create<ConcatOp>(getLoc(), parts, axis).getResult());
  return success();
}

LogicalResult ConcatOp::buildVjp(OpBuilder &builder, ArrayRef<Value> cot,
                                 SmallVectorImpl<Value> &out) {
  int64_t axis = getAxis(), offset = 0;
  for (Value in : getInputs()) {
    int64_t n = typeOf(in).getDimSize(axis);
    out.push_back(builder.create<SliceOp>(getLoc(), cot[0], axis, offset, n));
    offset += n;
  }
  return success();
}

LogicalResult GatherOp::buildVjp(OpBuilder &builder, ArrayRef<Value> cot,
                                 SmallVectorImpl<Value> &out) {
  out.push_back(builder.create<ScatterAddOp>(getLoc(), getTable().getType(),
                                             cot[0], getIds()));
  out.push_back(Value());
  return success();
}

LogicalResult ScatterAddOp::buildVjp(OpBuilder &builder, ArrayRef<Value> cot,
                                     SmallVectorImpl<Value> &out) {
  out.push_back(builder.create<GatherOp>(getLoc(), cot[0], getIds()));
  out.push_back(Value());
  return success();
}
