// The communication plan of a compiled entry point as data parallelism uses
// it (docs/distributed.md, "The communication plan"). The compiler records
// it in the artifact (compiler/Codegen/CommPlan.h): parameter groups, and per
// entry point where each group is gathered, released and its gradients are
// final (artifact::CommEvent). Here: the plan's events by step, the step
// after which a flat range's gradients are final (gradient buckets, which
// are cut by the world size, not by groups), and how much a rank holds
// gathered at most.
#pragma once

#include <cstdint>
#include <vector>

#include "formats/artifact.h"
#include "runtime/exec/range.h"

namespace tlc {

struct CommPoints {
  std::vector<int64_t> gradFinal;  // per group: the step after which its gradients are final, -1 if none
  // The step after which every gradient in flat range `r` is final (-1: no
  // step writes any of them).
  int64_t gradsFinalAfter(const artifact::Artifact &a, Range r) const;
};

CommPoints commPoints(const artifact::Artifact &a, const artifact::EntryPoint &e);

// The most elements of groups gathered at once while `e` runs: from a
// gather's issue to its release; what zero=3 holds beside its own shard
// (an upper bound: the owned part of each group is counted too).
int64_t peakGatheredElements(const artifact::Artifact &a, const artifact::EntryPoint &e);

}  // namespace tlc
