// Communication points of a compiled entry point (docs/distributed.md,
// "Overlap"): the step that first reads each parameter and the step after
// which each gradient is final. Derived here from the steps' operands, not
// recorded by the compiler: a step that names a parameter's buffer reads it
// (train_step never writes parameters) and a step that names its gradient
// buffer writes or accumulates into it, so the last such step finishes the
// gradient. Whatever order the compiler's passes (fusion, recomputation)
// leave the steps in, the points follow it without a format change.
#pragma once

#include <cstdint>
#include <vector>

#include "formats/artifact.h"
#include "runtime/exec/range.h"

namespace tlc {

struct CommPoints {
  std::vector<int64_t> firstRead;  // per parameter: the first step reading it, -1 if none
  std::vector<int64_t> gradFinal;  // per parameter: the last step touching its gradient, -1 if none
  // The step after which every gradient in flat range `r` is final (-1:
  // before the first step: no step writes any of them).
  int64_t gradsFinalAfter(const artifact::Artifact &a, Range r) const;
  // The first step that reads any parameter in flat range `r` (-1: none).
  int64_t firstReadOf(const artifact::Artifact &a, Range r) const;
};

CommPoints commPoints(const artifact::Artifact &a, const artifact::EntryPoint &e);

}  // namespace tlc
