//===- RecomputeInterface.td - what an op costs and how to redo it -*- tablegen -*-===//
//
// Declared by the compiler, not the dialect: tl ops get it as external models
// from compiler/Passes/RecomputeModels.cpp. tl-recompute asks it which
// forward values may be recomputed in the backward, from what, at what cost.
// An op without a model is never recomputed and counts one FLOP per result
// element in the step's total.
//
//===----------------------------------------------------------------------===//
#ifndef TL_COMPILER_PASSES_RECOMPUTE_INTERFACE_TD
#define TL_COMPILER_PASSES_RECOMPUTE_INTERFACE_TD

include "mlir/IR/OpBase.td"

def TL_RecomputeOpInterface : OpInterface<"RecomputeOpInterface"> {
  let cppNamespace = "::mlir::tl";
  let description = [{
    The cost model and the recomputation rule of an op, for tl-recompute:
    how many floating-point operations the op does, whether result `index`
    may be recomputed in the backward instead of kept from the forward, which
    values that recomputation reads, and how to build it.
  }];
  let methods = [
    InterfaceMethod<[{
        Floating-point operations of the op as it stands (a multiply-add is
        two). Used for the step's total and, by default, as the cost of
        recomputing a result.
      }],
      "int64_t", "getFlops", (ins)>,
    InterfaceMethod<[{
        Whether result `index` may be recomputed. Saved statistics (rstd,
        log-sum-exp) and results whose recomputation costs a forward of
        attention may not.
      }],
      "bool", "canRecompute", (ins "unsigned":$index), [{}], [{
        return true;
      }]>,
    InterfaceMethod<[{
        The values a recomputation of result `index` reads; by default the
        op's operands. A fused op may name its own other results (the
        normalised output of `tl.add_rmsnorm` is recomputed from its `sum`).
      }],
      "::llvm::SmallVector<::mlir::Value>", "getRecomputeInputs", (ins "unsigned":$index), [{}], [{
        return ::llvm::SmallVector<::mlir::Value>($_op->getOperands());
      }]>,
    InterfaceMethod<[{
        Builds, at the builder's insertion point, ops that recompute result
        `index` from `inputs` (the values getRecomputeInputs names, or their
        recomputed copies, in that order) and returns the new value, of the
        result's type. By default a clone of the op on `inputs`.
      }],
      "::mlir::Value", "buildRecompute",
      (ins "::mlir::OpBuilder &":$builder, "unsigned":$index, "::mlir::ValueRange":$inputs), [{}], [{
        ::mlir::IRMapping mapping;
        mapping.map($_op->getOperands(), inputs);
        return builder.clone(*$_op.getOperation(), mapping)->getResult(index);
      }]>,
    InterfaceMethod<[{
        Floating-point operations of recomputing result `index`; by default
        the op's.
      }],
      "int64_t", "getRecomputeFlops", (ins "unsigned":$index), [{}], [{
        return ::mlir::cast<::mlir::tl::RecomputeOpInterface>($_op.getOperation()).getFlops();
      }]>,
  ];
}

#endif // TL_COMPILER_PASSES_RECOMPUTE_INTERFACE_TD
