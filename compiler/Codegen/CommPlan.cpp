//===- CommPlan.cpp - where data parallelism moves parameters -------------===//
#include "compiler/Codegen/CommPlan.h"

#include <algorithm>
#include <cctype>
#include <set>

namespace mlir::tl::codegen {

namespace art = ::tlc::artifact;

namespace {

// "model.layers.3.mlp.up_proj.weight" -> "model.layers.3"; "" without a number.
std::string layerOf(const std::string &name) {
  size_t begin = 0;
  while (begin < name.size()) {
    size_t end = name.find('.', begin);
    if (end == std::string::npos) end = name.size();
    bool digits = end > begin && std::all_of(name.begin() + begin, name.begin() + end,
                                             [](unsigned char c) { return std::isdigit(c); });
    if (digits) return name.substr(0, end);
    begin = end + 1;
  }
  return "";
}

} // namespace

std::vector<art::ParamGroup> groupParameters(const std::vector<art::Tensor> &params) {
  std::vector<art::ParamGroup> groups;
  for (int i = 0; i < static_cast<int>(params.size()); ++i) {
    std::string layer = layerOf(params[i].name);
    if (!groups.empty() && !layer.empty() && groups.back().name == layer) {
      groups.back().last = i;
    } else {
      groups.push_back({layer.empty() ? params[i].name : layer, i, i, 0, 0});
    }
    groups.back().begin = params[groups.back().first].offset;
    groups.back().end = params[i].offset + params[i].numel();
  }
  return groups;
}

namespace {

// The group of every parameter.
std::vector<int> groupOfParam(const art::Artifact &a) {
  std::vector<int> of(a.params.size(), 0);
  for (int g = 0; g < static_cast<int>(a.groups.size()); ++g)
    for (int p = a.groups[g].first; p <= a.groups[g].last; ++p) of[p] = g;
  return of;
}

// The groups whose parameters (kind Param) or gradients (kind Grad) step i names.
std::vector<std::set<int>> touched(const art::Artifact &a, const art::EntryPoint &e, art::BufferKind kind) {
  std::vector<int> of = groupOfParam(a);
  std::vector<std::set<int>> byStep(e.steps.size());
  for (size_t i = 0; i < e.steps.size(); ++i)
    for (int b : e.steps[i].buffers)
      if (a.buffers[b].kind == kind) byStep[i].insert(of[a.buffers[b].offset]);
  return byStep;
}

int64_t bytesOf(const art::Artifact &a, int g) {
  return (a.groups[g].end - a.groups[g].begin) * static_cast<int64_t>(art::dtypeSize(a.paramDType()));
}

} // namespace

std::vector<GroupUse> groupUses(const art::Artifact &a, const art::EntryPoint &e) {
  std::vector<std::set<int>> reads = touched(a, e, art::BufferKind::Param);
  std::vector<std::vector<int64_t>> readers(a.groups.size());
  for (size_t i = 0; i < reads.size(); ++i)
    for (int g : reads[i]) readers[g].push_back(static_cast<int64_t>(i));
  int64_t largest = 0;
  for (int g = 0; g < static_cast<int>(a.groups.size()); ++g) largest = std::max(largest, bytesOf(a, g));
  std::vector<GroupUse> uses;
  for (int g = 0; g < static_cast<int>(a.groups.size()); ++g) {
    const std::vector<int64_t> &r = readers[g];
    for (size_t k = 0; k < r.size();) {
      GroupUse use{g, r[k], r[k]};
      for (++k; k < r.size(); ++k) {
        std::set<int> between;
        for (int64_t s = use.last + 1; s < r[k]; ++s) between.insert(reads[s].begin(), reads[s].end());
        int64_t others = 0;
        for (int o : between) others += bytesOf(a, o);
        // A small group (a norm's weight) stays: releasing it saves little.
        if (others > bytesOf(a, g) && 16 * bytesOf(a, g) > largest) break;
        use.last = r[k];
      }
      uses.push_back(use);
    }
  }
  std::sort(uses.begin(), uses.end(), [](const GroupUse &x, const GroupUse &y) {
    return x.first < y.first || (x.first == y.first && x.group < y.group);
  });
  return uses;
}

void planCommunication(art::Artifact &a) {
  a.groups = groupParameters(a.params);
  for (art::EntryPoint &e : a.entries) {
    e.comm.clear();
    std::vector<GroupUse> uses = groupUses(a, e);
    std::vector<int64_t> releasedAfter(a.groups.size(), -1);  // the group's last release so far
    for (size_t k = 0; k < uses.size(); ++k) {
      const GroupUse &u = uses[k];
      // One use ahead: issued when the use before it may start.
      int64_t issue = k == 0 ? -1 : uses[k - 1].first - 1;
      // Never before the same group's previous release, nor at or after its need.
      issue = std::min(std::max(issue, releasedAfter[u.group]), u.first - 1);
      e.comm.push_back({art::CommEvent::Gather, u.group, issue, u.first});
      e.comm.push_back({art::CommEvent::Release, u.group, u.last, -1});
      releasedAfter[u.group] = u.last;
    }
    std::vector<std::set<int>> writes = touched(a, e, art::BufferKind::Grad);
    std::vector<int64_t> final(a.groups.size(), -1);
    for (size_t i = 0; i < writes.size(); ++i)
      for (int g : writes[i]) final[g] = static_cast<int64_t>(i);
    for (int g = 0; g < static_cast<int>(a.groups.size()); ++g)
      if (final[g] >= 0) e.comm.push_back({art::CommEvent::GradsFinal, g, final[g], -1});
    std::stable_sort(e.comm.begin(), e.comm.end(), [](const art::CommEvent &x, const art::CommEvent &y) {
      return x.after < y.after || (x.after == y.after && x.kind < y.kind);
    });
  }
}

} // namespace mlir::tl::codegen
