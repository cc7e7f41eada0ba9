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

#include "compiler/Codegen/BatchAnalysis.h"
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

/// A count of work (rows, elements): a run-time kernel argument. `expr` is
/// its name in the kernel (`tl_n0`, `tl_n1`, ...), `compiled` the value for
/// the compiled shapes, `batched` whether it follows the run's micro-batch
/// (the runtime scales it). Kernels of equal text share one compiled body
/// whatever their counts.
struct Count {
  int64_t compiled = 0;
  std::string expr;
  bool batched = false;
};

/// What a generator needs besides its op: the error code of kernels that can
/// fault, which values scale with the micro-batch, and the op's counts,
/// collected as the generator asks for them.
struct KernelContext {
  int errorCode = 0;
  const BatchAnalysis *batch = nullptr;
  std::vector<Count> *counts = nullptr;  // the op's, in order of first use

  bool batched(Value v) const { return batch && batch->batched(v); }
  /// `n` (rows or elements of `v`, counting its leading axis) as a run-time
  /// count; equal counts share one argument.
  Count count(Value v, int64_t n) const {
    bool scales = batched(v);
    if (!counts) return {n, std::to_string(n), false};
    for (const Count &c : *counts)
      if (c.compiled == n && c.batched == scales) return c;
    counts->push_back({n, "tl_n" + std::to_string(counts->size()), scales});
    return counts->back();
  }
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
template <typename OpT, LoweredOp (*Generate)(OpT, const std::string &, const KernelContext &)>
struct GeneratorModel
    : KernelGeneratorOpInterface::ExternalModel<GeneratorModel<OpT, Generate>, OpT> {
  FailureOr<LoweredOp> generateKernels(Operation *op, const std::string &prefix,
                                       const KernelContext &context) const {
    return Generate(cast<OpT>(op), prefix, context);
  }
};

template <typename OpT, LoweredOp (*Generate)(OpT, const std::string &, const KernelContext &)>
void attachGenerator(MLIRContext &context) {
  OpT::template attachInterface<GeneratorModel<OpT, Generate>>(context);
}

} // namespace mlir::tl::codegen

#endif
