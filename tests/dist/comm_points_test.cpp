// Communication points (runtime/exec/comm_points.h) read from a hand-built
// plan: two groups, p0's gradients final after step 5 and p1's after step 3,
// and a plan that gathers p0, then p1 while p0 is still held.
#include <gtest/gtest.h>

#include "runtime/exec/comm_points.h"

namespace {

using tlc::Range;
using namespace tlc::artifact;

Artifact twoGroups() {
  Artifact a;
  for (int i = 0; i < 2; ++i) {
    Tensor t;
    t.name = "p" + std::to_string(i);
    t.shape = {100};
    t.offset = i * 128;  // aligned: elements 100..127 are padding
    a.params.push_back(t);
    a.groups.push_back({t.name, i, i, i * 128, i * 128 + 100});
  }
  EntryPoint e;
  e.name = kTrainStep;
  e.steps.resize(6);
  e.comm = {{CommEvent::Gather, 0, -1, 0}, {CommEvent::Gather, 1, 0, 1}, {CommEvent::Release, 1, 3, -1},
            {CommEvent::GradsFinal, 1, 3, -1}, {CommEvent::Release, 0, 5, -1}, {CommEvent::GradsFinal, 0, 5, -1}};
  a.entries.push_back(e);
  return a;
}

TEST(CommPoints, FinalGradientsOfFlatRanges) {
  Artifact a = twoGroups();
  tlc::CommPoints p = tlc::commPoints(a, a.entries[0]);
  EXPECT_EQ(p.gradFinal, (std::vector<int64_t>{5, 3}));
  EXPECT_EQ(p.gradsFinalAfter(a, Range{128, 192}), 3);   // inside p1
  EXPECT_EQ(p.gradsFinalAfter(a, Range{64, 192}), 5);    // spans both: the later
  EXPECT_EQ(p.gradsFinalAfter(a, Range{100, 128}), -1);  // padding only: no writer
}

TEST(CommPoints, PeakGatheredIsBothGroups) {
  Artifact a = twoGroups();
  EXPECT_EQ(tlc::peakGatheredElements(a, a.entries[0]), 200);
  a.entries[0].comm = {{CommEvent::Gather, 0, -1, 0}, {CommEvent::Release, 0, 0, -1}, {CommEvent::Gather, 1, 0, 1},
                       {CommEvent::Release, 1, 5, -1}};
  EXPECT_EQ(tlc::peakGatheredElements(a, a.entries[0]), 100);
}

}  // namespace
