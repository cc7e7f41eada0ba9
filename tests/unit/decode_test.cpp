// Generation: the compiled decode step (one token with a KV cache) against
// the full forward pass of the compiled forward-only loss on the same
// tokens (CPU, and the CUDA kernels on the CUDA emulator), NVRTC compiles of
// its CUDA kernels, the error for artifacts without one, and the sampler.
#include "compiler/Driver/Compile.h"
#include "models/tinyllama.h"
#include "formats/artifact.h"
#include "runtime/cuda/nvrtc.h"
#include "runtime/train/training_state.h"
#include "runtime/generate/decoder.h"
#include "runtime/generate/sampler.h"

#include "mlir/IR/BuiltinOps.h"

#include "CudaEmulator.h"
#include "CompiledModelTest.h"

#include <cmath>
#include <cstdlib>
#include <map>
#include <random>

using namespace mlir;
using tlc::generate::Decoder;
using tlc::generate::Sampler;
using tlc::generate::SamplingOptions;

namespace {

// GQA (2 query heads per KV head), a context not a multiple of any tile.
constexpr const char *kSmall = "layers=2,dim=32,heads=4,kv_heads=2,ffn=48,vocab=61,seq=9,micro_batch=2";

class DecodeTest : public CompiledModelTest {
protected:

  tlc::artifact::Artifact compile(const std::string &preset, const std::string &overrides, bool bf16 = false) {
    return compileTinyLlama(preset, overrides, bf16);
  }

  std::vector<std::vector<float>> randomParams(const tlc::artifact::Artifact &a) {
    return CompiledModelTest::randomParams(a, rng);
  }

  /// The mean next-token loss of the decode step's logits over B sequences,
  /// each decoded from position 0 (so later sequences reuse a stale cache).
  double decodeLoss(const tlc::artifact::Artifact &a, tlc::Device &device,
                    const std::vector<std::vector<float>> &params, const std::vector<int32_t> &tokens,
                    const std::vector<int32_t> &targets, int64_t batch, int64_t seq) {
    Decoder d(a, device, "test.tlx");
    EXPECT_EQ(d.context(), seq);
    for (size_t i = 0; i < params.size(); ++i) d.setParam(i, params[i].data());
    double sum = 0;
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t t = 0; t < seq; ++t) {
        const std::vector<float> &logits = d.step(tokens[b * seq + t], t);
        double m = -INFINITY, s = 0;
        for (float x : logits) m = std::max(m, static_cast<double>(x));
        for (float x : logits) s += std::exp(x - m);
        sum += std::log(s) + m - logits[targets[b * seq + t]];
      }
    return sum / static_cast<double>(batch * seq);
  }

  void checkAgainstEvalLoss(bool bf16, double tolerance) {
    tlc::artifact::Artifact a = compile("tiny", kSmall, bf16);
    ASSERT_NE(a.entry(tlc::artifact::kDecodeStep), nullptr);
    auto params = randomParams(a);
    auto cpu = tlc::makeCpuDevice();
    tlc::TrainingState engine(a, *cpu);
    for (size_t i = 0; i < params.size(); ++i) engine.setParam(i, params[i].data());
    int64_t B = engine.batchSize(), T = engine.seqLen();
    for (int trial = 0; trial < 2; ++trial) {
      std::vector<int32_t> tokens(B * T), targets(B * T);
      for (int32_t &x : tokens) x = static_cast<int32_t>(rng() % 61);
      for (int32_t &x : targets) x = static_cast<int32_t>(rng() % 61);
      double want = engine.evalLoss(tokens.data(), targets.data());
      for (bool cuda : {false, true}) {
        auto device = cuda ? tlc::testing::makeEmulatedCudaDevice() : tlc::makeCpuDevice();
        double got = decodeLoss(a, *device, params, tokens, targets, B, T);
        EXPECT_NEAR(got, want, tolerance * std::abs(want)) << (cuda ? "emulated CUDA" : "CPU");
      }
    }
  }

  std::mt19937 rng{11};
};

TEST_F(DecodeTest, DecodeStepIsTheForwardPassWithACache) { checkAgainstEvalLoss(false, 5e-7); }

TEST_F(DecodeTest, Bf16DecodeStepFollowsTheBf16ForwardPass) { checkAgainstEvalLoss(true, 1e-2); }

TEST_F(DecodeTest, DecodeStepShapesAndNames) {
  tlc::artifact::Artifact a = compile("tiny", kSmall);
  const tlc::artifact::EntryPoint *e = a.entry(tlc::artifact::kDecodeStep);
  ASSERT_NE(e, nullptr);
  std::map<std::string, std::vector<int64_t>> inputs, outputs;
  for (const auto &t : e->inputs) inputs[t.name] = t.shape;
  for (const auto &t : e->outputs) outputs[t.name] = t.shape;
  EXPECT_EQ(inputs["token"], (std::vector<int64_t>{1}));
  EXPECT_EQ(inputs["position"], (std::vector<int64_t>{1}));
  EXPECT_EQ(outputs["logits"], (std::vector<int64_t>{1, 61}));
  for (const char *c : {"cache.k.0", "cache.v.0", "cache.k.1", "cache.v.1"}) {
    EXPECT_EQ(inputs[c], (std::vector<int64_t>{2, 9, 8})) << c;
    EXPECT_EQ(outputs[c], inputs[c]) << c;
  }
  EXPECT_EQ(inputs.size(), 6u);
  // No training-size tensors: the step's arena is far below the training step's.
  EXPECT_LT(e->arenaBytes * 4, a.entry(tlc::artifact::kTrainStep)->arenaBytes);
  auto device = tlc::makeCpuDevice();
  Decoder d(a, *device, "test.tlx");
  EXPECT_THROW(d.step(1, 9), std::out_of_range);
}

TEST_F(DecodeTest, ArtifactsWithoutADecodeStepAskForARecompile) {
  tlc::artifact::Artifact a = compileWithoutModel("tiny", kSmall);  // no decode step
  EXPECT_EQ(a.entry(tlc::artifact::kDecodeStep), nullptr);
  auto device = tlc::makeCpuDevice();
  try {
    Decoder d(a, *device, "old.tlx");
    FAIL() << "a decoder without a decode step";
  } catch (const tlc::artifact::Error &e) {
    EXPECT_NE(std::string(e.what()).find("old.tlx: the artifact has no decode step"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("recompile the model with tlc compile"), std::string::npos) << e.what();
  }
}

TEST_F(DecodeTest, DecodeKernelsCompileWithNvrtc) {
  std::string why;
  if (!tlc::cuda::nvrtcAvailable(&why)) GTEST_SKIP() << why;
  tlc::artifact::Artifact a = compile("tiny", "");
  ASSERT_NE(a.entry(tlc::artifact::kDecodeStep), nullptr);
  tlc::cuda::Compiled c = tlc::cuda::compileWithNvrtc(a.cudaSource, "sm_90");
  EXPECT_TRUE(c.ok) << c.log;
  EXPECT_EQ(c.log.find("warning"), std::string::npos) << c.log;
}

//===- The sampler --------------------------------------------------------===//

std::vector<float> someLogits() { return {0.5f, 2.0f, -1.0f, 1.5f, 2.0f, 0.0f, -3.0f, 1.0f}; }

TEST(SamplerTest, GreedyIsTheFirstLargestLogit) {
  Sampler s({0.0, 0, 1.0, 1});
  EXPECT_EQ(s.next(someLogits(), 8), 1);
  EXPECT_EQ(s.next(someLogits(), 1), 0);  // ids from 1 on are not allowed
  Sampler k1({1.0, 1, 1.0, 5});           // top-1 sampling is greedy too
  for (int i = 0; i < 20; ++i) EXPECT_EQ(k1.next(someLogits(), 8), 1);
  Sampler p({1.0, 0, 1e-6, 5});  // so is a tiny nucleus
  for (int i = 0; i < 20; ++i) EXPECT_EQ(p.next(someLogits(), 8), 1);
}

TEST(SamplerTest, SameSeedSameDraws) {
  auto draws = [](uint64_t seed) {
    Sampler s({0.9, 0, 1.0, seed});
    std::vector<int32_t> v;
    for (int i = 0; i < 64; ++i) v.push_back(s.next(someLogits(), 8));
    return v;
  };
  EXPECT_EQ(draws(3), draws(3));
  EXPECT_NE(draws(3), draws(4));
}

/// Empirical frequencies of `n` draws.
std::vector<double> frequencies(const SamplingOptions &o, int n, int64_t allowed = 8) {
  Sampler s(o);
  std::vector<double> f(someLogits().size(), 0.0);
  for (int i = 0; i < n; ++i) f[s.next(someLogits(), allowed)] += 1.0 / n;
  return f;
}

/// softmax(logits / temperature) over `support`, zero elsewhere.
std::vector<double> expected(double temperature, const std::vector<int> &support) {
  std::vector<float> l = someLogits();
  std::vector<double> p(l.size(), 0.0);
  double total = 0;
  for (int i : support) total += p[i] = std::exp(l[i] / temperature);
  for (double &x : p) x /= total;
  return p;
}

void expectClose(const std::vector<double> &got, const std::vector<double> &want) {
  for (size_t i = 0; i < got.size(); ++i) {
    if (want[i] == 0) EXPECT_EQ(got[i], 0.0) << "id " << i;
    else EXPECT_NEAR(got[i], want[i], 0.01) << "id " << i;  // 4+ standard errors at 40000 draws
  }
}

TEST(SamplerTest, DrawsFollowTheTemperedSoftmax) {
  expectClose(frequencies({1.0, 0, 1.0, 7}, 40000), expected(1.0, {0, 1, 2, 3, 4, 5, 6, 7}));
  expectClose(frequencies({0.5, 0, 1.0, 8}, 40000), expected(0.5, {0, 1, 2, 3, 4, 5, 6, 7}));
  expectClose(frequencies({2.0, 0, 1.0, 9}, 40000, 4), expected(2.0, {0, 1, 2, 3}));
}

TEST(SamplerTest, TopKAndTopPKeepTheMostLikely) {
  // Top-3: the logits 2.0 (ids 1 and 4) and 1.5 (id 3).
  expectClose(frequencies({1.0, 3, 1.0, 10}, 40000), expected(1.0, {1, 3, 4}));
  // Softmax at T=1: ids 1, 4 hold 0.295 each, id 3 0.179, id 7 0.108: p = 0.6
  // needs the first three (0.769), p = 0.5 the first two (0.590).
  expectClose(frequencies({1.0, 0, 0.6, 11}, 40000), expected(1.0, {1, 3, 4}));
  expectClose(frequencies({1.0, 0, 0.5, 12}, 40000), expected(1.0, {1, 4}));
}

TEST(SamplerTest, OutOfRangeOptionsAreRefused) {
  EXPECT_THROW(Sampler({-1.0, 0, 1.0, 1}), std::invalid_argument);
  EXPECT_THROW(Sampler({NAN, 0, 1.0, 1}), std::invalid_argument);
  EXPECT_THROW(Sampler({1.0, -2, 1.0, 1}), std::invalid_argument);
  EXPECT_THROW(Sampler({1.0, 0, 0.0, 1}), std::invalid_argument);
  EXPECT_THROW(Sampler({1.0, 0, 1.5, 1}), std::invalid_argument);
}

}  // namespace
