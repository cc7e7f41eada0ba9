//===- Lowering.h - a training step to a .tlx artifact -----------*- C++ -*-===//
#ifndef TL_COMPILER_CODEGEN_LOWERING_H
#define TL_COMPILER_CODEGEN_LOWERING_H

#include "runtime/artifact.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"

namespace mlir::tl::codegen {

struct LoweringStats {
  int kernels = 0, gemms = 0, fusedOps = 0, fusionGroups = 0;
};

/// Forms kernels from the (fused) function's ops in program order: fused
/// ops and gathers through their generators, tl.fusion groups and any other
/// elementwise or data-movement op through the expression generator,
/// matmuls as GEMM steps, reshapes as aliases. Every intermediate goes into
/// one arena at an offset chosen from liveness (first fit, 256-byte aligned).
FailureOr<::tlc::artifact::Artifact> lowerToArtifact(func::FuncOp func, LoweringStats &stats);

} // namespace mlir::tl::codegen

#endif
