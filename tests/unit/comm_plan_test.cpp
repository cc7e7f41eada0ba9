// The communication plan (compiler/Codegen/CommPlan.h) on compiled TinyLlama
// steps: the groups are the layers; walking every entry point's steps with
// its events, each step finds the groups it reads gathered (and arrived), no
// gradient is written after its group's GradsFinal, everything is released
// at the end, gathers run one use ahead, and at most about three groups are
// gathered at once. On a hand-built plan: where a group's reads split into
// uses. The plan survives the artifact's file.
#include "compiler/Codegen/CommPlan.h"

#include "CompiledModelTest.h"

#include <cstdio>
#include <unistd.h>

namespace art = tlc::artifact;

namespace {

std::vector<int> groupOf(const art::Artifact &a) {
  std::vector<int> of(a.params.size(), -1);
  for (size_t g = 0; g < a.groups.size(); ++g)
    for (int p = a.groups[g].first; p <= a.groups[g].last; ++p) of[p] = static_cast<int>(g);
  return of;
}

// Walks `e` with its plan; returns the most elements gathered at once.
int64_t walk(const art::Artifact &a, const art::EntryPoint &e) {
  std::vector<int> of = groupOf(a);
  std::vector<bool> gathered(a.groups.size(), false), gradsFinal(a.groups.size(), false);
  std::vector<int64_t> need(a.groups.size(), -1);
  int64_t now = 0, peak = 0;
  size_t k = 0;
  auto apply = [&](int64_t after) {
    for (; k < e.comm.size() && e.comm[k].after == after; ++k) {
      const art::CommEvent &c = e.comm[k];
      int64_t size = a.groups[c.group].end - a.groups[c.group].begin;
      if (c.kind == art::CommEvent::Gather) {
        EXPECT_FALSE(gathered[c.group]) << e.name << ": group " << c.group << " gathered twice at " << after;
        gathered[c.group] = true, need[c.group] = c.need;
        peak = std::max(peak, now += size);
      } else if (c.kind == art::CommEvent::Release) {
        EXPECT_TRUE(gathered[c.group]) << e.name << ": group " << c.group << " released ungathered at " << after;
        gathered[c.group] = false, now -= size;
      } else {
        gradsFinal[c.group] = true;
      }
    }
  };
  apply(-1);
  for (size_t i = 0; i < e.steps.size(); ++i) {
    for (int b : e.steps[i].buffers) {
      const art::Buffer &buf = a.buffers[b];
      if (buf.kind != art::BufferKind::Param && buf.kind != art::BufferKind::Grad) continue;
      int g = of[buf.offset];
      if (buf.kind == art::BufferKind::Param)
        EXPECT_TRUE(gathered[g] && need[g] <= static_cast<int64_t>(i))
            << e.name << " step " << i << " reads group " << a.groups[g].name << " before it is gathered";
      if (buf.kind == art::BufferKind::Grad)
        EXPECT_FALSE(gradsFinal[g]) << e.name << " step " << i << " writes " << a.groups[g].name << "'s gradients after they were final";
    }
    apply(static_cast<int64_t>(i));
  }
  EXPECT_EQ(k, e.comm.size()) << e.name << ": events left over";
  EXPECT_EQ(now, 0) << e.name << ": groups still gathered at the end";
  return peak;
}

class CommPlanTest : public CompiledModelTest {};

TEST_F(CommPlanTest, GroupsAreTheLayers) {
  art::Artifact a = compileTinyLlama("tiny", "layers=3");
  std::vector<std::string> names;
  for (const art::ParamGroup &g : a.groups) names.push_back(g.name);
  EXPECT_EQ(names, (std::vector<std::string>{"model.embed_tokens.weight", "model.layers.0", "model.layers.1",
                                             "model.layers.2", "model.norm.weight", "lm_head.weight"}));
  for (size_t g = 1; g <= 3; ++g) EXPECT_EQ(a.groups[g].last - a.groups[g].first + 1, 9) << names[g];
}

TEST_F(CommPlanTest, EveryReadFindsItsGroupGatheredOneUseAhead) {
  for (bool bf16 : {false, true}) {
    art::Artifact a = compileTinyLlama("tiny", "layers=4,micro_batch=2,seq=32", bf16);
    int64_t largest = 0;
    for (const art::ParamGroup &g : a.groups) largest = std::max(largest, g.end - g.begin);
    for (const art::EntryPoint &e : a.entries) {
      int64_t peak = walk(a, e);
      EXPECT_LE(peak, 3 * largest) << e.name;
      EXPECT_LT(peak, a.flatElements) << e.name << ": never the whole buffer";
      // Each layer is gathered for the forward and again for the backward.
      int layerGathers = 0, ahead = 0, gathers = 0;
      for (const art::CommEvent &c : e.comm) {
        if (c.kind != art::CommEvent::Gather) continue;
        ++gathers;
        ahead += c.after + 1 < c.need;  // issued before the step before its first reader
        layerGathers += a.groups[c.group].name.rfind("model.layers.", 0) == 0;
      }
      if (e.name == art::kTrainStep) EXPECT_EQ(layerGathers, 8);
      if (e.name == art::kEvalLoss) EXPECT_EQ(layerGathers, 4);
      EXPECT_GE(ahead, gathers - 2) << e.name << ": gathers wait for the use before them";
    }
  }
}

TEST_F(CommPlanTest, PlanSurvivesTheArtifactFile) {
  art::Artifact a = compileTinyLlama("tiny", "layers=2");
  std::string path = ::testing::TempDir() + "comm-plan-" + std::to_string(getpid()) + ".tlx";
  art::write(path, a);
  art::Artifact b = art::read(path);
  std::remove(path.c_str());
  ASSERT_EQ(b.groups.size(), a.groups.size());
  for (size_t e = 0; e < a.entries.size(); ++e) {
    ASSERT_EQ(b.entries[e].comm.size(), a.entries[e].comm.size());
    for (size_t k = 0; k < a.entries[e].comm.size(); ++k) {
      const art::CommEvent &x = a.entries[e].comm[k], &y = b.entries[e].comm[k];
      EXPECT_TRUE(x.kind == y.kind && x.group == y.group && x.after == y.after && x.need == y.need);
    }
  }
}

// Three parameters of equal size: a group's reads stay one use while the
// steps between them read no more than it holds, and split beyond that.
TEST(CommPlan, ReadsSplitIntoUsesWhereOthersOutweighTheGroup) {
  art::Artifact a;
  for (int i = 0; i < 3; ++i) {
    art::Tensor t;
    t.name = "p" + std::to_string(i);
    t.shape = {128};
    t.buffer = i;
    a.params.push_back(t);
    a.buffers.push_back({512, art::BufferKind::Param, i});
  }
  art::assignFlatLayout(a);
  auto step = [](int buffer) {
    art::Step s;
    s.buffers = {buffer};
    return s;
  };
  art::EntryPoint e;
  e.name = art::kEvalLoss;
  // p0 | p1 | p0 (one other group between: one use) | p1 | p2 | p0 (two: split).
  e.steps = {step(0), step(1), step(0), step(1), step(2), step(0)};
  a.entries.push_back(e);
  mlir::tl::codegen::planCommunication(a);
  ASSERT_EQ(a.groups.size(), 3u);
  std::vector<mlir::tl::codegen::GroupUse> uses = mlir::tl::codegen::groupUses(a, a.entries[0]);
  std::vector<std::tuple<int, int64_t, int64_t>> got;
  for (const auto &u : uses) got.emplace_back(u.group, u.first, u.last);
  EXPECT_EQ(got, (std::vector<std::tuple<int, int64_t, int64_t>>{{0, 0, 2}, {1, 1, 3}, {2, 4, 4}, {0, 5, 5}}));
  walk(a, a.entries[0]);
}

} // namespace
