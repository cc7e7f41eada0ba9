// Picking the next token from logits: greedy, or sampling with temperature,
// top-k and top-p (nucleus), deterministic for a seed.
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace tlc::generate {

struct SamplingOptions {
  double temperature = 1.0;  // 0: greedy (the first largest logit)
  int64_t topK = 0;          // 0: no limit
  double topP = 1.0;         // 1: no limit
  uint64_t seed = 1337;
};

class Sampler {
 public:
  // Throws std::invalid_argument naming the option when out of range.
  explicit Sampler(const SamplingOptions &o);
  // A token id in [0, allowed): ids beyond the tokenizer's vocabulary are
  // never drawn. With top-k, the k largest logits (ties by lower id); with
  // top-p, the fewest most likely tokens whose probability sums to >= p
  // (at least one), as Hugging Face's TopPLogitsWarper; then a draw from
  // softmax(logits / temperature) renormalised over those.
  int32_t next(const std::vector<float> &logits, int64_t allowed);

 private:
  SamplingOptions o_;
  std::mt19937_64 rng_;
  std::vector<int32_t> order_;
  std::vector<double> probs_;
};

}  // namespace tlc::generate
