//===- CommPlan.h - where data parallelism moves parameters -------*- C++ -*-===//
//
// The communication plan of fully sharded data parallelism (zero=3,
// docs/distributed.md "The communication plan"), chosen by the compiler from
// the final schedule of every entry point: the parameter groups, and for each
// group where its parameters are gathered (one group ahead of their first
// reader, so the gather runs while the group before computes), where they are
// released (after their last reader of a use), and where its gradients are
// final. No MLIR here: it reads only the artifact's steps.
//
//===----------------------------------------------------------------------===//
#ifndef TL_COMPILER_CODEGEN_COMMPLAN_H
#define TL_COMPILER_CODEGEN_COMMPLAN_H

#include "formats/artifact.h"

namespace mlir::tl::codegen {

/// Consecutive parameters whose names agree up to the first all-digit
/// component ("model.layers.3.") form one group, a layer; any other
/// parameter (embedding, final norm, head) is a group of its own.
std::vector<::tlc::artifact::ParamGroup> groupParameters(const std::vector<::tlc::artifact::Tensor> &params);

/// The reads of a group split into uses: a use ends where the steps until
/// its next read touch more bytes of other groups' parameters than the group
/// holds, so that keeping it gathered would cost more than gathering it
/// again (groups under 1/16 of the largest never split: releasing them saves
/// little). Each use is gathered before it, released after it.
struct GroupUse {
  int group = 0;
  int64_t first = 0, last = 0;  // steps
};
std::vector<GroupUse> groupUses(const ::tlc::artifact::Artifact &a, const ::tlc::artifact::EntryPoint &e);

/// Sets a.groups and every entry point's comm (needs the flat layout).
void planCommunication(::tlc::artifact::Artifact &a);

} // namespace mlir::tl::codegen

#endif
