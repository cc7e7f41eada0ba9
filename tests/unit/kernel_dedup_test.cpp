// Kernel deduplication: identical layers (and the forward kernels eval_loss
// shares with train_step) are generated once, every step still calls a
// kernel the artifact holds, and a kernel that reports an out-of-range id
// still names its own entry point's op.
#include "formats/artifact.h"
#include "runtime/exec/device.h"
#include "runtime/train/training_state.h"

#include "CompiledModelTest.h"

#include <algorithm>
#include <random>
#include <regex>
#include <set>

namespace {

constexpr const char *kShape = "dim=24,heads=2,kv_heads=1,ffn=40,vocab=61,seq=8,micro_batch=2";

class KernelDedupTest : public CompiledModelTest {
protected:
  tlc::artifact::Artifact compileLayers(int layers) {
    return compileTinyLlama("tiny", "layers=" + std::to_string(layers) + "," + kShape);
  }
  /// `source` with the i-th kernel's name written K<i> and error codes
  /// blanked, up to the optimizer kernels (whose grid follows the parameter count).
  static std::string normalised(const tlc::artifact::Artifact &a, std::string source) {
    source = source.substr(0, source.find(std::string("\n// ---- ") + tlc::artifact::kAdamWKernel));
    std::vector<std::pair<std::string, std::string>> names;
    for (size_t i = 0; i < a.kernels.size(); ++i) names.push_back({a.kernels[i].name, "K" + std::to_string(i)});
    // Longest first: a name may begin with another's.
    std::sort(names.begin(), names.end(), [](auto &x, auto &y) { return x.first.size() > y.first.size(); });
    for (const auto &[from, to] : names)
      for (size_t at = source.find(from); at != std::string::npos; at = source.find(from, at + to.size()))
        source.replace(at, from.size(), to);
    return std::regex_replace(source, std::regex("TL_FAIL\\([0-9]+\\)"), "TL_FAIL(code)");
  }
};

TEST_F(KernelDedupTest, IdenticalLayersShareTheirKernels) {
  tlc::artifact::Artifact two = compileLayers(2), four = compileLayers(4);
  ASSERT_EQ(two.entries.size(), 4u);  // train_step, eval_loss, decode_step, forward_logits
  // Twice the layers: more steps, not one kernel more, nor a byte of source.
  EXPECT_GT(four.entry("train_step")->steps.size(), two.entry("train_step")->steps.size());
  EXPECT_EQ(four.kernels.size(), two.kernels.size());
  // The sources are the same but for the kernels' names (counters) and the
  // step indices error-reporting kernels report.
  EXPECT_EQ(normalised(four, four.cudaSource), normalised(two, two.cudaSource));
  EXPECT_EQ(normalised(four, four.cpuSource), normalised(two, two.cpuSource));

  std::set<std::string> names;
  for (const auto &k : four.kernels) EXPECT_TRUE(names.insert(k.name).second) << "two kernels named " << k.name;
  size_t kernelSteps = 0;
  for (const auto &e : four.entries)
    for (const auto &s : e.steps)
      if (s.kind == tlc::artifact::Step::Kernel) {
        ++kernelSteps;
        EXPECT_TRUE(names.count(s.kernel)) << e.name << " calls a kernel the artifact lacks: " << s.kernel;
      }
  // Far fewer kernels than launches: the layers (and eval_loss) reuse them.
  EXPECT_LT(4 * four.kernels.size(), kernelSteps);
  // eval_loss calls no kernel of its own but its loss's.
  std::set<std::string> trainKernels;
  for (const auto &s : four.entry("train_step")->steps) trainKernels.insert(s.kernel);
  std::set<std::string> evalKernels, evalOnly;
  for (const auto &s : four.entry("eval_loss")->steps)
    if (s.kind == tlc::artifact::Step::Kernel) {
      evalKernels.insert(s.kernel);
      if (!trainKernels.count(s.kernel)) evalOnly.insert(s.kernel);
    }
  EXPECT_LT(2 * evalOnly.size(), evalKernels.size());
}

TEST_F(KernelDedupTest, ErrorReportingKernelsStillNameTheirOp) {
  tlc::artifact::Artifact a = compileLayers(4);
  auto device = tlc::makeCpuDevice();
  tlc::TrainingState e(a, *device);
  std::vector<float> params;
  std::mt19937 rng(3);
  std::normal_distribution<double> normal(0.0, 0.2);
  for (size_t i = 0; i < a.params.size(); ++i) {
    params.resize(a.params[i].numel());
    for (float &x : params) x = static_cast<float>(normal(rng));
    e.setParam(i, params.data());
  }
  std::vector<int32_t> tokens(e.batchSize() * e.seqLen()), targets(tokens.size());
  for (auto *v : {&tokens, &targets})
    for (int32_t &x : *v) x = static_cast<int32_t>(rng() % 61);

  // The first step (of its kind) in `entry` whose kernel name contains `what`.
  auto stepOf = [&](const std::string &entry, const std::string &what) -> const tlc::artifact::Step * {
    for (const auto &s : a.entry(entry)->steps)
      if (s.kind == tlc::artifact::Step::Kernel && s.kernel.find(what) != std::string::npos) return &s;
    return nullptr;
  };
  auto expectNamed = [&](auto run, const std::string &entry, const std::string &what) {
    const tlc::artifact::Step *s = stepOf(entry, what);
    ASSERT_TRUE(s) << "no " << what << " kernel in " << entry;
    EXPECT_TRUE(a.kernel(s->kernel)->checksErrors) << s->kernel;
    try {
      run();
      ADD_FAILURE() << "an out-of-range id in " << entry << " was not reported";
    } catch (const tlc::DeviceError &err) {
      std::string m = err.what();
      EXPECT_NE(m.find(" in " + entry + " step "), std::string::npos) << m;
      EXPECT_NE(m.find("(" + s->kernel + ") at " + s->location), std::string::npos) << m;
    }
  };
  // A token beyond the vocabulary: the embedding gather, in either entry point.
  std::vector<int32_t> badTokens = tokens;
  badTokens[5] = 1000;
  expectNamed([&] { e.evalLoss(badTokens.data(), targets.data()); }, "eval_loss", "gather");
  expectNamed([&] { e.trainMicroBatch(badTokens.data(), targets.data()); }, "train_step", "gather");
  // A target beyond the vocabulary: the cross-entropy.
  std::vector<int32_t> badTargets = targets;
  badTargets[3] = 61;
  expectNamed([&] { e.evalLoss(tokens.data(), badTargets.data()); }, "eval_loss", "cross_entropy");
  expectNamed([&] { e.trainMicroBatch(tokens.data(), badTargets.data()); }, "train_step", "cross_entropy");
}

} // namespace
