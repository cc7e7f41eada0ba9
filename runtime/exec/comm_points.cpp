#include "runtime/exec/comm_points.h"

#include <algorithm>

namespace tlc {

CommPoints commPoints(const artifact::Artifact &a, const artifact::EntryPoint &e) {
  CommPoints p;
  p.gradFinal.assign(a.groups.size(), -1);
  for (const artifact::CommEvent &c : e.comm)
    if (c.kind == artifact::CommEvent::GradsFinal) p.gradFinal.at(static_cast<size_t>(c.group)) = c.after;
  return p;
}

int64_t CommPoints::gradsFinalAfter(const artifact::Artifact &a, Range r) const {
  int64_t step = -1;
  for (size_t g = 0; g < a.groups.size(); ++g)
    if (a.groups[g].begin < r.end && a.groups[g].end > r.begin) step = std::max(step, gradFinal[g]);
  return step;
}

int64_t peakGatheredElements(const artifact::Artifact &a, const artifact::EntryPoint &e) {
  int64_t now = 0, peak = 0;
  for (const artifact::CommEvent &c : e.comm) {
    const artifact::ParamGroup &g = a.groups.at(static_cast<size_t>(c.group));
    if (c.kind == artifact::CommEvent::Gather) peak = std::max(peak, now += g.end - g.begin);
    if (c.kind == artifact::CommEvent::Release) now -= g.end - g.begin;
  }
  return peak;
}

}  // namespace tlc
