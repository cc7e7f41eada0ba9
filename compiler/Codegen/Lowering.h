//===- Lowering.h - a training step to a .tlx artifact -----------*- C++ -*-===//
#ifndef TL_COMPILER_CODEGEN_LOWERING_H
#define TL_COMPILER_CODEGEN_LOWERING_H

#include "formats/artifact.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace mlir::tl::codegen {

struct LoweringStats {
  int kernels = 0, gemms = 0, fusedOps = 0, fusionGroups = 0;
};

/// A function to lower as the artifact's entry point `name`.
struct EntryFunction {
  std::string name;
  func::FuncOp func;
};

/// Forms kernels from each (fused) function's ops in program order: fused
/// ops and gathers through their generators, tl.fusion groups and any other
/// elementwise or data-movement op through the expression generator,
/// matmuls as GEMM steps, reshapes as aliases. Every intermediate goes into
/// one arena at an offset chosen from liveness (first fit, 256-byte aligned);
/// the entry points share the arena, each planned from offset 0.
///
/// Parameters (`tl.param`, matched by name across entry points) live in one
/// flat buffer; gradients (`tl.grad` results) are added into the flat f32
/// gradient buffer: an f32 GEMM producing only a gradient accumulates into it
/// directly (beta = 1), any other producer's result is added by an
/// accumulate kernel right after it. The optimizer kernels are appended.
FailureOr<::tlc::artifact::Artifact> lowerToArtifact(llvm::ArrayRef<EntryFunction> entries,
                                                     LoweringStats &stats);
/// One function as the entry point "train_step".
FailureOr<::tlc::artifact::Artifact> lowerToArtifact(func::FuncOp func, LoweringStats &stats);

} // namespace mlir::tl::codegen

#endif
