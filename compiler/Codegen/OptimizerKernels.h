//===- OptimizerKernels.h - AdamW, gradient norm, accumulation --*- C++ -*-===//
//
// Kernels over a runtime range of the flat buffers (the element count is
// read from a device buffer, so one kernel serves any shard), and the
// accumulation of a gradient into the flat f32 gradient buffer.
//
//===----------------------------------------------------------------------===//
#ifndef TL_COMPILER_CODEGEN_OPTIMIZERKERNELS_H
#define TL_COMPILER_CODEGEN_OPTIMIZERKERNELS_H

#include "compiler/Codegen/Kernel.h"

namespace mlir::tl::codegen {

/// opt_adamw(master, m, v, params, grads, decay, hyper, count): PyTorch's
/// AdamW update of `*count` elements; params stored as `paramStorage`
/// ("float" or "uint16_t" for bf16). hyper = {1 - lr*wd, beta1, beta2, eps,
/// 1 - beta1, 1 - beta2, lr / (1 - beta1^t), sqrt(1 - beta2^t), gradScale}.
/// `maxElements` bounds the CUDA grid (a grid-stride loop covers the rest).
KernelSpec adamwKernel(const std::string &paramStorage, int64_t maxElements);

/// opt_sumsq_partial(grads, count, partial): kSumSqPartials partial sums of
/// squares in double over fixed contiguous chunks; opt_sumsq_final(partial,
/// total) adds them in order. The result never depends on thread counts.
KernelSpec sumSqPartialKernel();
KernelSpec sumSqFinalKernel();

/// name(grad, x): grad[i] += x[i] for `elements` values stored as
/// `sourceStorage` ("float" or "uint16_t" for bf16).
KernelSpec accumulateKernel(const std::string &name, int64_t elements, const std::string &sourceStorage);

} // namespace mlir::tl::codegen

#endif
