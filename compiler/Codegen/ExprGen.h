//===- ExprGen.h - elementwise kernels generated from tl IR ------*- C++ -*-===//
#ifndef TL_COMPILER_CODEGEN_EXPRGEN_H
#define TL_COMPILER_CODEGEN_EXPRGEN_H

#include "compiler/Codegen/KernelInterfaces.h"

#include "mlir/IR/Value.h"
#include "mlir/Support/LogicalResult.h"

namespace mlir::tl::codegen {

/// The storage type of a tensor element in kernels ("float" for f32,
/// "uint16_t" for bf16, "int32_t", "uint8_t" for i1); failure for others.
FailureOr<std::string> storageType(Type elementType);

/// A kernel computing `output` element by element from `inputs` (kernel
/// parameters in0, in1, ...; the result goes to `out`). The ops between are
/// any mix of elementwise ops, broadcasts, reshapes, transposes, slices,
/// concats, constants, iotas and reductions: each work item computes one
/// output element, looping over reduced axes. Counts that scale with the
/// micro-batch (`ctx`) are run-time. Emits an error at `loc` and fails for
/// an op it cannot generate.
FailureOr<KernelSpec> generateExpressionKernel(const std::string &name,
                                               ArrayRef<Value> inputs, Value output,
                                               Location loc, const KernelContext &ctx);
/// The same for several outputs of one shape (parameters out0, out1, ...):
/// the results of a multi-result elementwise op, computed by one kernel.
FailureOr<KernelSpec> generateExpressionKernel(const std::string &name,
                                               ArrayRef<Value> inputs, ArrayRef<Value> outputs,
                                               Location loc, const KernelContext &ctx);

} // namespace mlir::tl::codegen

#endif
