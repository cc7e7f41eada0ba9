//===- ReferenceSemanticsInterface.td - the oracle's fused ops -*- tablegen -*-===//
//
// Declared by the evaluator, not the dialect: the reference semantics of
// the fused ops are external models attached from FusedOps.cpp, so they stay
// an oracle written apart from the passes and the kernels they check.
//
//===----------------------------------------------------------------------===//
#ifndef TL_EVALUATOR_REFERENCE_SEMANTICS_TD
#define TL_EVALUATOR_REFERENCE_SEMANTICS_TD

include "mlir/IR/OpBase.td"

def TL_ReferenceSemanticsOpInterface : OpInterface<"ReferenceSemanticsOpInterface"> {
  let cppNamespace = "::mlir::tl";
  let description = [{
    What a fused op computes, as straight loops in double precision written
    from its formula. The reference evaluator executes every op with this
    interface through it; the fusion tests hold the result against the
    primitive graph the fusion replaced, the gradient tests against finite
    differences.
  }];
  let methods = [
    InterfaceMethod<[{
        The op's results from its operand values (in operand order). Errors
        (a target id out of range) are emitted at the op.
      }],
      "::mlir::FailureOr<std::vector<::tlc::HostTensor>>", "evaluate",
      (ins "::llvm::ArrayRef<const ::tlc::HostTensor *>":$operands)>,
  ];
}

#endif // TL_EVALUATOR_REFERENCE_SEMANTICS_TD
