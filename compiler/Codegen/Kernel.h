//===- Kernel.h - one kernel, emitted for CPU C++ and CUDA C++ ---*- C++ -*-===//
//
// A kernel is described once: typed pointer parameters and either an
// elementwise body (run for i in [0, workItems)) shared by both targets, or
// a pair of target-specific bodies for kernels that cooperate across threads
// (warp reductions on CUDA, row loops on the CPU). emitCpu/emitCuda wrap
// them into one translation unit per target. Counts of rows and elements
// are run-time arguments (`const int64_t tl_n0, ...`, last), so a kernel
// serves every step of equal text whatever its counts.
//
//===----------------------------------------------------------------------===//
#ifndef TL_COMPILER_CODEGEN_KERNEL_H
#define TL_COMPILER_CODEGEN_KERNEL_H

#include <cstdint>
#include <string>
#include <vector>

namespace mlir::tl::codegen {

struct KernelParam {
  std::string name;
  std::string storage; // "float", "uint16_t" (bf16), "int32_t", "uint8_t" (i1)
  bool isConst = true;
};

/// Elements each CUDA thread of an elementwise kernel computes.
constexpr int kElementsPerThread = 4;

struct KernelSpec {
  std::string name;
  std::vector<KernelParam> params;
  bool checksErrors = false; // takes a trailing `int *err`; bodies use TL_FAIL(code)

  // Elementwise kernels: `body` runs for each `i` in [0, workItems); `count`
  // is that bound as C (a count argument, `tl_nK`; empty: the literal).
  int64_t workItems = 0;
  std::string count, body;
  // The count arguments it takes (tl_n0 .. tl_n<numCounts-1>).
  int numCounts = 0;
  // The CUDA grid (`grid`, for the compiled shapes) shrinks with the run's
  // micro-batch: the kernel bounds its work by its counts.
  bool batchedGrid = false;

  // Cooperative kernels: full bodies per target, and the CUDA launch.
  std::string cpuBody, cudaBody;
  int64_t grid = 0, block = 0, sharedBytes = 0;

  std::string fileScope; // constant tables, both targets (TL_CONST arrays)

  // Optional CPU form of an elementwise kernel: a full body (row loops with
  // a contiguous inner loop) used instead of the flat loop over `body`.
  std::string cpuLoop;

  bool isElementwise() const { return cpuBody.empty(); }
  /// CUDA launch of an elementwise kernel: 256 threads a block.
  void finalizeLaunch();
};

/// Everything both targets emit for `k` with its name left out: kernels
/// with equal keys are interchangeable, so a step may call either.
std::string kernelKey(const KernelSpec &k);

/// The translation unit for each target: prelude, then every kernel.
std::string emitCpu(const std::vector<KernelSpec> &kernels);
std::string emitCuda(const std::vector<KernelSpec> &kernels);

/// `#pragma omp parallel for` for a CPU loop doing about `work` element
/// operations, or nothing when that is too little to be worth waking threads.
std::string cpuParallelFor(int64_t work);

/// A float literal that parses identically in C++ and CUDA ("1.5f", TL_INF).
std::string floatLiteral(double v);

} // namespace mlir::tl::codegen

#endif
