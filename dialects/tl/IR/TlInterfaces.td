//===- TlInterfaces.td - interfaces of tl ops --------------*- tablegen -*-===//
#ifndef TL_INTERFACES_TD
#define TL_INTERFACES_TD

include "mlir/IR/OpBase.td"

def TL_DifferentiableOpInterface : OpInterface<"DifferentiableOpInterface"> {
  let cppNamespace = "::mlir::tl";
  let description = [{
    The derivative rule of an op for reverse-mode differentiation: given the
    cotangent of its result(s), build the cotangents of its operands (a
    vector-Jacobian product) with ordinary tl ops. Rules may reuse the op's
    operands and results (forward values are kept, not recomputed). The
    `tl-autodiff` pass calls the rule of every op on a path from a parameter to
    the loss, sums cotangents of values used more than once, and removes
    cotangents nobody needs.
  }];
  let methods = [
    InterfaceMethod<[{
        Builds, at the builder's insertion point, the cotangent of every
        operand from `resultCotangents` (one per result, of the result's
        type; null for a result that does not reach the loss, such as saved
        statistics). `operandCotangents` receives one value per operand, of
        that operand's type, or a null value for operands that carry no
        gradient.
      }],
      "::mlir::LogicalResult", "buildVjp",
      (ins "::mlir::OpBuilder &":$builder,
           "::mlir::ArrayRef<::mlir::Value>":$resultCotangents,
           "::llvm::SmallVectorImpl<::mlir::Value> &":$operandCotangents)>,
    InterfaceMethod<[{
        Whether result `index` has a derivative rule. By default every result
        has; a fused op's saved statistics (rstd, mean, log-sum-exp) do not,
        and tl-autodiff refuses a loss that depends on one rather than drop
        its gradient.
      }],
      "bool", "isDifferentiableResult", (ins "unsigned":$index), [{}], [{
        return true;
      }]>,
    InterfaceMethod<[{
        Whether operand `index` carries a gradient. By default exactly the
        float operands do; token ids, masks and indices do not.
      }],
      "bool", "isDifferentiableOperand", (ins "unsigned":$index), [{}], [{
        return ::mlir::isa<::mlir::FloatType>(
            ::mlir::getElementTypeOrSelf($_op->getOperand(index).getType()));
      }]>,
  ];
}

#endif // TL_INTERFACES_TD
