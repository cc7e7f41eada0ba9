//===- KernelInterfaces.h - how tl ops become kernels ------------*- C++ -*-===//
//
// The two code generation interfaces (KernelInterfaces.td) and the steps a
// generator returns. Ops get the interfaces as external models from the
// files in compiler/Codegen/Kernels/; attachKernelInterfaces() attaches
// them all (the build lists those files, nobody else does).
//
//===----------------------------------------------------------------------===//
#ifndef TL_COMPILER_CODEGEN_KERNELINTERFACES_H
#define TL_COMPILER_CODEGEN_KERNELINTERFACES_H

#include "compiler/Codegen/Kernel.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/IR/Operation.h"
#include "mlir/Support/LogicalResult.h"

#include <string>
#include <vector>

namespace mlir::tl::codegen {

/// A kernel operand: an IR value's buffer, or scratch buffer `scratch` of
/// the op being lowered.
struct Operand {
  Value value;
  int scratch = -1;
};

/// One step of a lowered op: a kernel launch, or zero-filling operand 0.
struct LoweredStep {
  bool zero = false;
  KernelSpec kernel;
  std::vector<Operand> operands; // in the kernel's parameter order
};

/// The steps an op becomes, and the scratch buffers (bytes) they share.
struct LoweredOp {
  std::vector<int64_t> scratchBytes;
  std::vector<LoweredStep> steps;
};

} // namespace mlir::tl::codegen

#include "compiler/Codegen/KernelInterfaces.h.inc"

namespace mlir::tl::codegen {

/// Attaches every model of compiler/Codegen/Kernels/ to the tl ops of
/// `context` (loading the dialect). Idempotent; the lowering calls it, so
/// any context that compiles has them.
void attachKernelInterfaces(MLIRContext &context);

/// A kernel-generator model from a function of the op: what a file in
/// Kernels/ attaches with `attachGenerator<MyOp, myKernels>(context)`.
template <typename OpT, LoweredOp (*Generate)(OpT, const std::string &, int)>
struct GeneratorModel
    : KernelGeneratorOpInterface::ExternalModel<GeneratorModel<OpT, Generate>, OpT> {
  FailureOr<LoweredOp> generateKernels(Operation *op, const std::string &prefix, int errorCode) const {
    return Generate(cast<OpT>(op), prefix, errorCode);
  }
};

template <typename OpT, LoweredOp (*Generate)(OpT, const std::string &, int)>
void attachGenerator(MLIRContext &context) {
  OpT::template attachInterface<GeneratorModel<OpT, Generate>>(context);
}

} // namespace mlir::tl::codegen

#endif
