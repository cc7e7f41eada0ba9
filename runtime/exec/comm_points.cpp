#include "runtime/exec/comm_points.h"

#include <algorithm>

namespace tlc {

CommPoints commPoints(const artifact::Artifact &a, const artifact::EntryPoint &e) {
  CommPoints p;
  p.firstRead.assign(a.params.size(), -1);
  p.gradFinal.assign(a.params.size(), -1);
  for (size_t i = 0; i < e.steps.size(); ++i)
    for (int b : e.steps[i].buffers) {
      const artifact::Buffer &buf = a.buffers.at(static_cast<size_t>(b));
      size_t param = static_cast<size_t>(buf.offset);
      if (buf.kind == artifact::BufferKind::Param && p.firstRead.at(param) < 0) p.firstRead[param] = static_cast<int64_t>(i);
      if (buf.kind == artifact::BufferKind::Grad) p.gradFinal.at(param) = static_cast<int64_t>(i);
    }
  return p;
}

namespace {
bool overlaps(const artifact::Tensor &t, Range r) { return t.offset < r.end && t.offset + t.numel() > r.begin; }
}  // namespace

int64_t CommPoints::gradsFinalAfter(const artifact::Artifact &a, Range r) const {
  int64_t step = -1;
  for (size_t i = 0; i < a.params.size(); ++i)
    if (overlaps(a.params[i], r)) step = std::max(step, gradFinal[i]);
  return step;
}

int64_t CommPoints::firstReadOf(const artifact::Artifact &a, Range r) const {
  int64_t step = -1;
  for (size_t i = 0; i < a.params.size(); ++i)
    if (overlaps(a.params[i], r) && firstRead[i] >= 0) step = step < 0 ? firstRead[i] : std::min(step, firstRead[i]);
  return step;
}

}  // namespace tlc
