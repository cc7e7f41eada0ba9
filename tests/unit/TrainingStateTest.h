// The fixture of the training-engine tests (training_state_test.cpp and
// training_state_bf16_test.cpp): a tiny TinyLlama compiled to every entry
// point, random parameters and batches, and the flat buffers read back.
#pragma once

#include "runtime/train/training_state.h"

#include "CompiledModelTest.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

using tlc::FlatBuffer;
using tlc::Range;
using tlc::TrainingState;

// Dimensions not multiples of the alignment, so padding is exercised.
inline constexpr const char *kSmall = "layers=2,dim=24,heads=2,kv_heads=1,ffn=40,vocab=61,seq=8,micro_batch=2";

class TrainingStateTest : public CompiledModelTest {
protected:

  /// The tiny preset with `overrides`, compiled to both entry points.
  tlc::artifact::Artifact compile(const std::string &overrides = kSmall, bool bf16 = false) {
    return compileTinyLlama("tiny", overrides, bf16);
  }

  std::vector<float> random(size_t n, double scale = 1.0) {
    std::vector<float> v(n);
    for (float &x : v) x = static_cast<float>(scale * normal(rng));
    return v;
  }
  void setRandomParams(TrainingState &e) {
    for (size_t i = 0; i < e.artifact().params.size(); ++i) {
      const auto &p = e.artifact().params[i];
      std::vector<float> v = random(p.numel(), 0.2);
      if (p.shape.size() == 1)
        for (float &x : v) x += 1.0f;
      e.setParam(i, v.data());
    }
  }
  /// [B, T] random tokens and targets below the vocabulary.
  std::pair<std::vector<int32_t>, std::vector<int32_t>> batch(const TrainingState &e) {
    std::vector<int32_t> tokens(e.batchSize() * e.seqLen()), targets(tokens.size());
    int vocab = e.artifact().config["vocab"].get<int>();
    for (auto *v : {&tokens, &targets})
      for (int32_t &x : *v) x = static_cast<int32_t>(rng() % vocab);
    return {tokens, targets};
  }
  std::vector<float> download(TrainingState &e, FlatBuffer which, Range r) {
    std::vector<float> v(r.size());
    e.download(which, r, v.data());
    return v;
  }
  Range all(const TrainingState &e) { return {0, e.flatElements()}; }
  /// Two random micro-batches' gradients, each alone and both accumulated.
  struct TwoMicroBatches {
    std::vector<float> first, second, both;
    float loss1 = 0, loss2 = 0, bothLoss1 = 0, bothLoss2 = 0;
  };
  TwoMicroBatches twoMicroBatches(TrainingState &e) {
    auto [t1, y1] = batch(e);
    auto [t2, y2] = batch(e);
    TwoMicroBatches r;
    e.zeroGrads();
    r.loss1 = e.trainMicroBatch(t1.data(), y1.data());
    r.first = download(e, FlatBuffer::Grads, all(e));
    e.zeroGrads();
    r.loss2 = e.trainMicroBatch(t2.data(), y2.data());
    r.second = download(e, FlatBuffer::Grads, all(e));
    e.zeroGrads();
    r.bothLoss1 = e.trainMicroBatch(t1.data(), y1.data());
    r.bothLoss2 = e.trainMicroBatch(t2.data(), y2.data());
    r.both = download(e, FlatBuffer::Grads, all(e));
    return r;
  }

  std::mt19937 rng{7};
  std::normal_distribution<double> normal{0.0, 1.0};
};

inline double relativeError(const std::vector<float> &got, const std::vector<float> &want) {
  double diff = 0, norm = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    diff += std::pow(static_cast<double>(got[i]) - want[i], 2);
    norm += std::pow(static_cast<double>(want[i]), 2);
  }
  return std::sqrt(diff / std::max(norm, 1e-300));
}
