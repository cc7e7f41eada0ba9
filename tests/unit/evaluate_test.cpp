// tlrun evaluate's scorer on compiled models: forward_logits' log-likelihoods
// summed over every position equal the compiled eval_loss on the same tokens
// (f32 and bf16, CPU and the CUDA kernels on the CUDA emulator), with a
// partial last batch and sequences cut to the context from the left; the
// entry point's shapes; the error for an artifact without it.
#include "formats/artifact.h"
#include "runtime/evaluate/scorer.h"
#include "runtime/train/training_state.h"

#include "CompiledModelTest.h"
#include "CudaEmulator.h"

#include <cmath>
#include <random>

namespace ev = tlc::evaluate;

namespace {

// GQA, a context and a vocabulary not a multiple of any tile, micro-batch 2.
constexpr const char *kSmall = "layers=2,dim=32,heads=4,kv_heads=2,ffn=48,vocab=61,seq=9,micro_batch=2";

class EvaluateTest : public CompiledModelTest {
protected:
  std::vector<std::vector<float>> randomParams(const tlc::artifact::Artifact &a) {
    return CompiledModelTest::randomParams(a, rng);
  }

  int32_t token() { return static_cast<int32_t>(rng() % 61); }

  /// Three sequences of T + 1 tokens scored at every position (the last batch
  /// has one row) against eval_loss of the micro-batches they make.
  void checkAgainstEvalLoss(bool bf16, double tolerance) {
    tlc::artifact::Artifact a = compileTinyLlama("tiny", kSmall, bf16);
    auto params = randomParams(a);
    auto cpu = tlc::makeCpuDevice();
    tlc::TrainingState engine(a, *cpu);
    for (size_t i = 0; i < params.size(); ++i) engine.setParam(i, params[i].data());
    const int64_t B = engine.batchSize(), T = engine.seqLen();
    std::vector<ev::Sequence> sequences(3);
    for (ev::Sequence &s : sequences) {
      for (int64_t t = 0; t <= T; ++t) s.tokens.push_back(token());
      s.scored = T;
    }
    // eval_loss of rows {0, 1} and of row 2 (with micro-batch 1).
    auto rowsLoss = [&](size_t first, int64_t rows) {
      std::vector<int32_t> tokens, targets;
      for (int64_t r = 0; r < rows; ++r) {
        const std::vector<int> &s = sequences[first + r].tokens;
        tokens.insert(tokens.end(), s.begin(), s.end() - 1);
        targets.insert(targets.end(), s.begin() + 1, s.end());
      }
      engine.setMicroBatch(rows);
      return static_cast<double>(engine.evalLoss(tokens.data(), targets.data())) * static_cast<double>(rows * T);
    };
    double want = rowsLoss(0, B) + rowsLoss(2, 1);
    for (bool cuda : {false, true}) {
      auto device = cuda ? tlc::testing::makeEmulatedCudaDevice() : tlc::makeCpuDevice();
      ev::Scorer scorer(a, *device, "test.tlx");
      EXPECT_EQ(scorer.batch(), B);
      EXPECT_EQ(scorer.context(), T);
      EXPECT_EQ(scorer.vocab(), 61);
      scorer.setParams(params);
      std::vector<ev::SequenceScore> scores = scorer.score(sequences);
      ASSERT_EQ(scores.size(), 3u);
      double got = 0;
      for (const ev::SequenceScore &s : scores) got -= s.loglik;
      EXPECT_NEAR(got, want, tolerance * std::abs(want)) << (cuda ? "emulated CUDA" : "CPU");
    }
  }

  std::mt19937 rng{17};
};

TEST_F(EvaluateTest, LogLikelihoodsSumToTheCompiledLoss) { checkAgainstEvalLoss(false, 2e-6); }

TEST_F(EvaluateTest, Bf16LogitsFollowTheBf16Loss) { checkAgainstEvalLoss(true, 2e-2); }

TEST_F(EvaluateTest, LongSequencesKeepTheirLastTokensAndGreedyIsTheArgmax) {
  tlc::artifact::Artifact a = compileTinyLlama("tiny", kSmall);
  const tlc::artifact::EntryPoint *e = a.entry(tlc::artifact::kForwardLogits);
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(e->inputs.size(), 1u);
  EXPECT_EQ(e->inputs[0].shape, (std::vector<int64_t>{2, 9}));
  ASSERT_EQ(e->outputs.size(), 1u);
  EXPECT_EQ(e->outputs[0].name, "logits");
  EXPECT_EQ(e->outputs[0].shape, (std::vector<int64_t>{2, 9, 61}));
  EXPECT_EQ(e->batch, 2);  // runs a smaller last batch
  auto params = randomParams(a);
  auto device = tlc::makeCpuDevice();
  ev::Scorer scorer(a, *device, "test.tlx");
  scorer.setParams(params);
  // A sequence of 15 tokens scores as its last T + 1 = 10.
  ev::Sequence longer;
  for (int i = 0; i < 15; ++i) longer.tokens.push_back(token());
  longer.scored = 3;
  ev::Sequence cut{std::vector<int>(longer.tokens.end() - 10, longer.tokens.end()), 3};
  std::vector<ev::SequenceScore> s = scorer.score({longer, cut});
  EXPECT_NEAR(s[0].loglik, s[1].loglik, 1e-5);  // rows of one batch: the GEMMs may round them apart
  // Appending the greedy token keeps greedy true; another token does not.
  ev::Sequence prompt{{3, 5, 7, 11}, 1};
  double best = -INFINITY;
  int argmax = 0;
  for (int v = 0; v < 61; ++v) {
    prompt.tokens.back() = v;
    double ll = scorer.score({prompt})[0].loglik;
    if (ll > best) best = ll, argmax = v;
  }
  prompt.tokens.back() = argmax;
  EXPECT_TRUE(scorer.score({prompt})[0].greedy);
  prompt.tokens.back() = (argmax + 1) % 61;
  EXPECT_FALSE(scorer.score({prompt})[0].greedy);
  // Nothing to score, too much to score, an id outside the vocabulary.
  EXPECT_THROW(scorer.score({{{1, 2}, 0}}), ev::TaskError);
  EXPECT_THROW(scorer.score({{std::vector<int>(12, 1), 10}}), ev::TaskError);
  EXPECT_THROW(scorer.score({{{1, 61}, 1}}), ev::TaskError);
}

TEST_F(EvaluateTest, ArtifactsWithoutForwardLogitsAskForARecompile) {
  tlc::artifact::Artifact a = compileWithoutModel("tiny", kSmall);
  EXPECT_EQ(a.entry(tlc::artifact::kForwardLogits), nullptr);
  auto device = tlc::makeCpuDevice();
  try {
    ev::Scorer scorer(a, *device, "old.tlx");
    FAIL() << "a scorer without forward_logits";
  } catch (const tlc::artifact::Error &e) {
    EXPECT_NE(std::string(e.what()).find("old.tlx: the artifact has no 'forward_logits' entry point"),
              std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("recompile the model with tlc compile"), std::string::npos) << e.what();
  }
}

}  // namespace
