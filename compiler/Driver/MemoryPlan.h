//===- MemoryPlan.h - tlc compile's memory budget and estimate ---*- C++ -*-===//
//
// What one device holds while training an artifact (parameters, gradients,
// optimizer state, the planned arena), how a --memory-budget becomes a
// budget for tl-recompute, and the lines tlc compile prints about both.
//
//===----------------------------------------------------------------------===//
#ifndef TL_COMPILER_DRIVER_MEMORYPLAN_H
#define TL_COMPILER_DRIVER_MEMORYPLAN_H

#include "compiler/Passes/Recompute.h"
#include "formats/artifact.h"

#include <cstdint>
#include <string>

namespace mlir::tl {

/// "30GiB", "30G" and "30g" (binary: 30 * 2^30), "32GB" (decimal), "512MiB",
/// "1.5TiB", or plain bytes; a UsageError naming `option` otherwise.
int64_t parseByteSize(const std::string &text, const std::string &option);

/// 1,234,567.
std::string withCommas(int64_t n);

/// "29.3 GB" (decimal, three significant digits), "512 KB", "17 B".
std::string humanBytes(int64_t bytes);

/// What tlrun allocates on one device besides the arena for `flatElements`
/// parameters stored in `paramBytes` bytes each: the parameters, f32
/// gradients, the optimizer (f32 master copy, AdamW's m and v, a decay mask)
/// and the GEMM workspace. `ranks`: the data-parallel ranks that share the
/// optimizer state (tlrun train's zero >= 1; 1: unsharded), counted for the
/// rank that owns the largest shard. Parameters and gradients are counted
/// whole: zero=2/3 on GPUs keep them whole (CPU ranks release theirs
/// between uses, which the estimate does not count).
struct DeviceState {
  int64_t params = 0, grads = 0, optimizer = 0, workspace = 0;
  int64_t total() const { return params + grads + optimizer + workspace; }
};
DeviceState deviceStateOf(int64_t flatElements, int64_t paramBytes, int ranks = 1);

/// One line per entry point: its steps and its arena plan.
std::string entryPointSummary(const ::tlc::artifact::Artifact &a);

/// Everything one device holds while training `a` on one of `ranks`: the
/// state above, the arena and the training entry points' inputs and outputs.
int64_t deviceTotal(const ::tlc::artifact::Artifact &a, int ranks = 1);

/// The per-device line of tlc compile: deviceTotal() term by term.
std::string memoryEstimate(const ::tlc::artifact::Artifact &a, int ranks = 1);

/// One line: what tl-recompute decided, its estimated savings and FLOPs.
std::string recomputeSummary(const RecomputeReport &r);

/// --report: the decisions grouped by op (count, bytes, FLOPs, the first
/// location), largest saving first.
std::string recomputeDecisions(const RecomputeReport &r);

} // namespace mlir::tl

#endif
