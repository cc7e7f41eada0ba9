// Communication points (runtime/exec/comm_points.h) on a hand-built plan:
// two parameters of a forward (reads p0 then p1) and a backward that finishes
// p1's gradient before p0's, with p0's gradient accumulated by two steps.
#include <gtest/gtest.h>

#include "runtime/exec/comm_points.h"

namespace {

using tlc::Range;
using namespace tlc::artifact;

Artifact twoParams() {
  Artifact a;
  for (int i = 0; i < 2; ++i) {
    Tensor t;
    t.name = "p" + std::to_string(i);
    t.shape = {100};
    t.offset = i * 128;  // aligned: elements 100..127 are padding
    a.params.push_back(t);
  }
  // Buffers: 0 arena, 1 p0, 2 p1, 3 grad p0, 4 grad p1.
  a.buffers = {{64, BufferKind::Arena, 0}, {400, BufferKind::Param, 0}, {400, BufferKind::Param, 1},
               {400, BufferKind::Grad, 0}, {400, BufferKind::Grad, 1}};
  EntryPoint e;
  e.name = kTrainStep;
  auto step = [](std::vector<int> buffers) {
    Step s;
    s.buffers = std::move(buffers);
    return s;
  };
  e.steps = {step({1, 0}), step({2, 0}), step({0}), step({0, 2, 4}), step({0, 3}), step({0, 1, 3})};
  a.entries.push_back(e);
  return a;
}

TEST(CommPoints, FirstReadsAndFinalGradients) {
  Artifact a = twoParams();
  tlc::CommPoints p = tlc::commPoints(a, a.entries[0]);
  EXPECT_EQ(p.firstRead, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(p.gradFinal, (std::vector<int64_t>{5, 3}));  // p0 accumulated by steps 4 and 5
  EXPECT_EQ(p.gradsFinalAfter(a, Range{128, 192}), 3);   // inside p1
  EXPECT_EQ(p.gradsFinalAfter(a, Range{64, 192}), 5);    // spans both: the later
  EXPECT_EQ(p.gradsFinalAfter(a, Range{100, 128}), -1);  // padding only: no writer
  EXPECT_EQ(p.firstReadOf(a, Range{0, 256}), 0);
  EXPECT_EQ(p.firstReadOf(a, Range{128, 256}), 1);
  EXPECT_EQ(p.firstReadOf(a, Range{228, 256}), -1);
}

}  // namespace
