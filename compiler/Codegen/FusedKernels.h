//===- FusedKernels.h - parametrised kernels for fused ops -------*- C++ -*-===//
#ifndef TL_COMPILER_CODEGEN_FUSEDKERNELS_H
#define TL_COMPILER_CODEGEN_FUSEDKERNELS_H

#include "compiler/Codegen/Kernel.h"

#include "mlir/IR/Operation.h"
#include "mlir/Support/LogicalResult.h"

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

/// Whether `op` has a dedicated generator (fused ops, gather, scatter_add).
bool hasKernelGenerator(Operation *op);

/// Kernels for `op`, named `prefix_*`. Kernels that can fault report
/// `errorCode` through the error flag.
FailureOr<LoweredOp> generateKernels(Operation *op, const std::string &prefix, int errorCode);

} // namespace mlir::tl::codegen

#endif
