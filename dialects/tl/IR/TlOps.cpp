//===- TlOps.cpp - verifiers, type inference and folders -----------------===//
#include "dialects/tl/IR/TlOps.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Diagnostics.h"

using namespace mlir;
using namespace mlir::tl;

#include "dialects/tl/IR/TlEnums.cpp.inc"
#include "dialects/tl/IR/TlInterfaces.cpp.inc"

#define GET_OP_CLASSES
#include "dialects/tl/IR/TlOps.cpp.inc"

LogicalResult mlir::tl::verifyBoundedShapes(Operation *op) {
  auto check = [&](Type type, StringRef what, unsigned index) -> LogicalResult {
    auto tensor = dyn_cast<RankedTensorType>(type);
    if (!tensor || !tensor.hasStaticShape()) return success(); // the type constraints say more
    int64_t elements = 1;
    for (int64_t extent : tensor.getShape()) {
      if (extent < 1)
        return op->emitOpError() << what << " #" << index << " (" << type
                                 << ") has an extent of " << extent << ": every extent must be at least 1";
      if (elements > kMaxTensorElements / extent)
        return op->emitOpError() << what << " #" << index << " (" << type
                                 << ") has more than 2^50 elements";
      elements *= extent;
    }
    return success();
  };
  for (auto [i, v] : llvm::enumerate(op->getOperands()))
    if (failed(check(v.getType(), "operand", i))) return failure();
  for (auto [i, v] : llvm::enumerate(op->getResults()))
    if (failed(check(v.getType(), "result", i))) return failure();
  return success();
}

namespace {
/// Checks that `axis` names a dimension of a rank-`rank` tensor.
LogicalResult checkAxis(std::optional<Location> loc, int64_t axis, int64_t rank,
                        StringRef what = "axis") {
  if (axis < 0 || axis >= rank)
    return emitOptionalError(loc, what, " ", axis,
                             " is out of range for a tensor of rank ", rank);
  return success();
}
} // namespace

//===----------------------------------------------------------------------===//
// Elementwise
//===----------------------------------------------------------------------===//

LogicalResult CmpOp::inferReturnTypes(MLIRContext *context,
                                      std::optional<Location> loc,
                                      ValueRange operands, DictionaryAttr attrs,
                                      OpaqueProperties props, RegionRange regions,
                                      SmallVectorImpl<Type> &inferred) {
  auto type = cast<RankedTensorType>(operands[0].getType());
  inferred.push_back(type.clone(IntegerType::get(context, 1)));
  return success();
}

LogicalResult ConvertOp::verify() {
  Type from = getInput().getType().getElementType();
  Type to = getResult().getType().getElementType();
  if (isa<FloatType>(to) && (isa<FloatType>(from) || from.isInteger(32) ||
                             from.isInteger(1)))
    return success();
  if (to.isInteger(32) && (from.isInteger(1) || from.isInteger(32)))
    return success();
  return emitOpError() << "cannot convert " << from << " to " << to;
}

//===----------------------------------------------------------------------===//
// Constants and iota
//===----------------------------------------------------------------------===//

LogicalResult ConstantOp::inferReturnTypes(
    MLIRContext *context, std::optional<Location> loc, ValueRange operands,
    DictionaryAttr attrs, OpaqueProperties props, RegionRange regions,
    SmallVectorImpl<Type> &inferred) {
  Adaptor adaptor(operands, attrs, props, regions);
  inferred.push_back(adaptor.getValue().getType());
  return success();
}

OpFoldResult ConstantOp::fold(FoldAdaptor) { return getValue(); }

LogicalResult IotaOp::verify() {
  return checkAxis(getLoc(), getAxis(), getResult().getType().getRank());
}

//===----------------------------------------------------------------------===//
// Shape and data movement
//===----------------------------------------------------------------------===//

LogicalResult BroadcastOp::verify() {
  RankedTensorType in = getInput().getType(), out = getResult().getType();
  if (in.getElementType() != out.getElementType())
    return emitOpError("operand and result element types differ");
  ArrayRef<int64_t> dims = getDims();
  if (static_cast<int64_t>(dims.size()) != in.getRank())
    return emitOpError() << "needs one entry in 'dims' per operand dimension ("
                         << in.getRank() << "), got " << dims.size();
  for (auto [i, d] : llvm::enumerate(dims)) {
    if (d < 0 || d >= out.getRank())
      return emitOpError() << "dims[" << i << "] = " << d
                           << " is out of range for a result of rank "
                           << out.getRank();
    if (i > 0 && d <= dims[i - 1])
      return emitOpError("'dims' must be strictly increasing");
    int64_t from = in.getDimSize(i), to = out.getDimSize(d);
    if (from != to && from != 1)
      return emitOpError() << "operand dimension " << i << " (" << from
                           << ") can't broadcast to result dimension " << d
                           << " (" << to << ")";
  }
  return success();
}

template <typename ReduceOp>
static LogicalResult inferReduce(std::optional<Location> loc,
                                 ValueRange operands, DictionaryAttr attrs,
                                 OpaqueProperties props, RegionRange regions,
                                 SmallVectorImpl<Type> &inferred) {
  typename ReduceOp::Adaptor adaptor(operands, attrs, props, regions);
  auto type = cast<RankedTensorType>(adaptor.getInput().getType());
  int64_t axis = adaptor.getAxis();
  if (failed(checkAxis(loc, axis, type.getRank())))
    return failure();
  SmallVector<int64_t> shape(type.getShape());
  shape.erase(shape.begin() + axis);
  inferred.push_back(RankedTensorType::get(shape, type.getElementType()));
  return success();
}

#define TL_REDUCE_INFER(OP)                                                    \
  LogicalResult OP::inferReturnTypes(                                          \
      MLIRContext *, std::optional<Location> loc, ValueRange operands,         \
      DictionaryAttr attrs, OpaqueProperties props, RegionRange regions,       \
      SmallVectorImpl<Type> &inferred) {                                       \
    return inferReduce<OP>(loc, operands, attrs, props, regions, inferred);    \
  }
TL_REDUCE_INFER(ReduceSumOp)
TL_REDUCE_INFER(ReduceMaxOp)
TL_REDUCE_INFER(ReduceMeanOp)
#undef TL_REDUCE_INFER

LogicalResult MatmulOp::inferReturnTypes(
    MLIRContext *, std::optional<Location> loc, ValueRange operands,
    DictionaryAttr attrs, OpaqueProperties props, RegionRange regions,
    SmallVectorImpl<Type> &inferred) {
  Adaptor adaptor(operands, attrs, props, regions);
  auto lhs = cast<RankedTensorType>(adaptor.getLhs().getType());
  auto rhs = cast<RankedTensorType>(adaptor.getRhs().getType());
  if (lhs.getElementType() != rhs.getElementType())
    return emitOptionalError(loc, "operand element types differ: ",
                             lhs.getElementType(), " vs ", rhs.getElementType());
  if (lhs.getRank() < 2 || rhs.getRank() < 2)
    return emitOptionalError(loc, "operands must have rank >= 2");
  if (rhs.getRank() != 2 && rhs.getRank() != lhs.getRank())
    return emitOptionalError(
        loc, "rhs must be a matrix or have the same rank as lhs (", lhs.getRank(),
        "), got rank ", rhs.getRank());
  int64_t lr = lhs.getRank(), rr = rhs.getRank();
  if (rr == lr) {
    for (int64_t i = 0; i < lr - 2; ++i)
      if (lhs.getDimSize(i) != rhs.getDimSize(i))
        return emitOptionalError(loc, "batch dimension ", i, " differs: ",
                                 lhs.getDimSize(i), " vs ", rhs.getDimSize(i));
  }
  bool tl = adaptor.getTransposeLhs(), tr = adaptor.getTransposeRhs();
  int64_t m = lhs.getDimSize(lr - (tl ? 1 : 2));
  int64_t kl = lhs.getDimSize(lr - (tl ? 2 : 1));
  int64_t kr = rhs.getDimSize(rr - (tr ? 1 : 2));
  int64_t n = rhs.getDimSize(rr - (tr ? 2 : 1));
  if (kl != kr)
    return emitOptionalError(loc, "contraction sizes differ: ", kl, " vs ", kr);
  SmallVector<int64_t> shape(lhs.getShape().drop_back(2));
  shape.append({m, n});
  inferred.push_back(RankedTensorType::get(shape, lhs.getElementType()));
  return success();
}

LogicalResult ReshapeOp::verify() {
  RankedTensorType in = getInput().getType(), out = getResult().getType();
  if (in.getElementType() != out.getElementType())
    return emitOpError("operand and result element types differ");
  if (in.getNumElements() != out.getNumElements())
    return emitOpError() << "can't reshape " << in.getNumElements()
                         << " elements into " << out.getNumElements();
  return success();
}

LogicalResult TransposeOp::inferReturnTypes(
    MLIRContext *, std::optional<Location> loc, ValueRange operands,
    DictionaryAttr attrs, OpaqueProperties props, RegionRange regions,
    SmallVectorImpl<Type> &inferred) {
  Adaptor adaptor(operands, attrs, props, regions);
  auto type = cast<RankedTensorType>(adaptor.getInput().getType());
  ArrayRef<int64_t> perm = adaptor.getPerm();
  if (static_cast<int64_t>(perm.size()) != type.getRank())
    return emitOptionalError(loc, "'perm' has ", perm.size(),
                             " entries for a tensor of rank ", type.getRank());
  SmallVector<bool> seen(perm.size(), false);
  SmallVector<int64_t> shape;
  for (int64_t p : perm) {
    if (p < 0 || p >= type.getRank() || seen[p])
      return emitOptionalError(loc, "'perm' is not a permutation");
    seen[p] = true;
    shape.push_back(type.getDimSize(p));
  }
  inferred.push_back(RankedTensorType::get(shape, type.getElementType()));
  return success();
}

LogicalResult SliceOp::inferReturnTypes(
    MLIRContext *, std::optional<Location> loc, ValueRange operands,
    DictionaryAttr attrs, OpaqueProperties props, RegionRange regions,
    SmallVectorImpl<Type> &inferred) {
  Adaptor adaptor(operands, attrs, props, regions);
  auto type = cast<RankedTensorType>(adaptor.getInput().getType());
  int64_t axis = adaptor.getAxis(), start = adaptor.getStart(),
          size = adaptor.getSize();
  if (failed(checkAxis(loc, axis, type.getRank())))
    return failure();
  // Compared without computing start + size, which may overflow.
  if (start < 0 || size <= 0 || size > type.getDimSize(axis) ||
      start > type.getDimSize(axis) - size)
    return emitOptionalError(loc, "slice of ", size, " from ", start,
                             " is outside dimension ", axis, " of size ",
                             type.getDimSize(axis));
  SmallVector<int64_t> shape(type.getShape());
  shape[axis] = size;
  inferred.push_back(RankedTensorType::get(shape, type.getElementType()));
  return success();
}

LogicalResult ConcatOp::inferReturnTypes(
    MLIRContext *, std::optional<Location> loc, ValueRange operands,
    DictionaryAttr attrs, OpaqueProperties props, RegionRange regions,
    SmallVectorImpl<Type> &inferred) {
  Adaptor adaptor(operands, attrs, props, regions);
  if (adaptor.getInputs().empty())
    return emitOptionalError(loc, "needs at least one operand");
  auto first = cast<RankedTensorType>(adaptor.getInputs()[0].getType());
  int64_t axis = adaptor.getAxis();
  if (failed(checkAxis(loc, axis, first.getRank())))
    return failure();
  SmallVector<int64_t> shape(first.getShape());
  for (Value v : adaptor.getInputs().drop_front()) {
    auto type = cast<RankedTensorType>(v.getType());
    if (type.getElementType() != first.getElementType() ||
        type.getRank() != first.getRank())
      return emitOptionalError(loc, "operands differ in element type or rank");
    for (int64_t d = 0; d < first.getRank(); ++d)
      if (d != axis && type.getDimSize(d) != first.getDimSize(d))
        return emitOptionalError(loc, "operands differ in dimension ", d,
                                 " (", first.getDimSize(d), " vs ",
                                 type.getDimSize(d), ")");
    shape[axis] += type.getDimSize(axis);
  }
  inferred.push_back(RankedTensorType::get(shape, first.getElementType()));
  return success();
}

LogicalResult GatherOp::inferReturnTypes(
    MLIRContext *, std::optional<Location> loc, ValueRange operands,
    DictionaryAttr attrs, OpaqueProperties props, RegionRange regions,
    SmallVectorImpl<Type> &inferred) {
  Adaptor adaptor(operands, attrs, props, regions);
  auto table = cast<RankedTensorType>(adaptor.getTable().getType());
  auto ids = cast<RankedTensorType>(adaptor.getIds().getType());
  if (table.getRank() != 2)
    return emitOptionalError(loc, "table must be a matrix [rows, width], got rank ",
                             table.getRank());
  SmallVector<int64_t> shape(ids.getShape());
  shape.push_back(table.getDimSize(1));
  inferred.push_back(RankedTensorType::get(shape, table.getElementType()));
  return success();
}

LogicalResult ScatterAddOp::verify() {
  RankedTensorType updates = getUpdates().getType(), out = getResult().getType();
  ArrayRef<int64_t> ids = getIds().getType().getShape();
  if (updates.getElementType() != out.getElementType())
    return emitOpError("updates and result element types differ");
  if (out.getRank() != 2)
    return emitOpError() << "result must be a matrix [rows, width], got rank "
                         << out.getRank();
  SmallVector<int64_t> expect(ids);
  expect.push_back(out.getDimSize(1));
  if (updates.getShape() != ArrayRef<int64_t>(expect))
    return emitOpError() << "updates must have the ids' shape followed by the "
                            "row width "
                         << out.getDimSize(1);
  return success();
}
