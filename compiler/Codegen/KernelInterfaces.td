//===- KernelInterfaces.td - code generation of tl ops ------*- tablegen -*-===//
//
// Declared by the code generator, not the dialect: the ops get these
// interfaces as external models attached from compiler/Codegen/Kernels/, so
// dialects/ holds no code generation and codegen holds no list of ops.
//
//===----------------------------------------------------------------------===//
#ifndef TL_CODEGEN_KERNEL_INTERFACES_TD
#define TL_CODEGEN_KERNEL_INTERFACES_TD

include "mlir/IR/OpBase.td"

def TL_KernelGeneratorOpInterface : OpInterface<"KernelGeneratorOpInterface"> {
  let cppNamespace = "::mlir::tl::codegen";
  let description = [{
    The kernels of an op that is not one expression per element: a reduction
    per row (RMSNorm, LayerNorm, cross-entropy), tiles (attention), indexed
    rows (gather, scatter_add). The lowering (compiler/Codegen/Lowering.cpp)
    turns every op with this interface into the steps it returns, with
    buffers bound to the steps' operands. Models live one file per op family
    in compiler/Codegen/Kernels/<Op>.cpp, each with its CPU and CUDA bodies.
  }];
  let methods = [
    InterfaceMethod<[{
        The steps the op becomes: kernels named `prefix_*` and zero fills,
        with the scratch buffers they share. Kernels that can fault (an id out
        of range) report `context.errorCode` through the error flag; counts
        of rows or elements come from `context.count(value, n)`, run-time
        expressions where they scale with the micro-batch.
      }],
      "::mlir::FailureOr<::mlir::tl::codegen::LoweredOp>", "generateKernels",
      (ins "const std::string &":$prefix, "const ::mlir::tl::codegen::KernelContext &":$context)>,
  ];
}

def TL_KernelExpressionOpInterface : OpInterface<"KernelExpressionOpInterface"> {
  let cppNamespace = "::mlir::tl::codegen";
  let description = [{
    The code generation of an elementwise op: each result as one C
    expression of its operands' values at the same index. The expression
    generator (compiler/Codegen/ExprGen.cpp) uses it wherever the op appears
    (alone or inside a `tl.fusion` group), for the CPU C++ and the CUDA
    kernels alike. Models live in compiler/Codegen/Kernels/<Op>.cpp.
  }];
  let methods = [
    InterfaceMethod<[{
        A C expression of type `float` for result `result`, given the
        operands as `float` expressions (already computed variables). It may
        use `expf`, `logf`, `sqrtf`, `tanhf` and the arithmetic operators.
      }],
      "std::string", "kernelExpression",
      (ins "unsigned":$result, "::llvm::ArrayRef<std::string>":$operands)>,
  ];
}

#endif // TL_CODEGEN_KERNEL_INTERFACES_TD
