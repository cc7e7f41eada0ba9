//===- TlOps.h - tl dialect operations ---------------------------*- C++ -*-===//
#ifndef TL_OPS_H
#define TL_OPS_H

#include "dialects/tl/IR/TlDialect.h"
#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/OpImplementation.h"
#include "mlir/IR/TypeUtilities.h"
#include "mlir/Interfaces/InferTypeOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir::tl {
/// The largest element count of a tensor of a tl op.
constexpr int64_t kMaxTensorElements = int64_t(1) << 50;
/// TL_BoundedShapes: every operand and result tensor has extents >= 1 and
/// at most kMaxTensorElements elements.
LogicalResult verifyBoundedShapes(Operation *op);
template <typename ConcreteType>
class BoundedShapes : public OpTrait::TraitBase<ConcreteType, BoundedShapes> {
public:
  static LogicalResult verifyTrait(Operation *op) { return verifyBoundedShapes(op); }
};
} // namespace mlir::tl

#include "dialects/tl/IR/TlEnums.h.inc"
#include "dialects/tl/IR/TlInterfaces.h.inc"

#define GET_OP_CLASSES
#include "dialects/tl/IR/TlOps.h.inc"

namespace mlir::tl {
/// Registers the tl dialect and the dialects its functions use (func).
void registerTlDialects(DialectRegistry &registry);
} // namespace mlir::tl

#endif // TL_OPS_H
