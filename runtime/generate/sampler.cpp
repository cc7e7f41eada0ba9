#include "runtime/generate/sampler.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace tlc::generate {

Sampler::Sampler(const SamplingOptions &o) : o_(o), rng_(o.seed) {
  if (!(o.temperature >= 0) || !std::isfinite(o.temperature))
    throw std::invalid_argument("--temperature must be a number >= 0, got " + std::to_string(o.temperature));
  if (o.topK < 0) throw std::invalid_argument("--top-k must be >= 0, got " + std::to_string(o.topK));
  if (!(o.topP > 0 && o.topP <= 1))
    throw std::invalid_argument("--top-p must be in (0, 1], got " + std::to_string(o.topP));
}

int32_t Sampler::next(const std::vector<float> &logits, int64_t allowed) {
  int64_t n = std::min<int64_t>(allowed, static_cast<int64_t>(logits.size()));
  if (n <= 0) throw std::invalid_argument("no token to sample from");
  if (o_.temperature == 0)
    return static_cast<int32_t>(std::max_element(logits.begin(), logits.begin() + n) - logits.begin());

  // Most likely first; equal logits by id, so the order never depends on the sort.
  order_.resize(n);
  for (int64_t i = 0; i < n; ++i) order_[i] = static_cast<int32_t>(i);
  std::sort(order_.begin(), order_.end(), [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  });
  int64_t keep = o_.topK > 0 ? std::min(o_.topK, n) : n;
  probs_.resize(keep);
  double top = logits[order_[0]] / o_.temperature, total = 0;
  for (int64_t i = 0; i < keep; ++i) total += probs_[i] = std::exp(logits[order_[i]] / o_.temperature - top);
  if (o_.topP < 1) {
    double cumulative = 0;
    int64_t i = 0;
    while (i < keep) {
      cumulative += probs_[i++] / total;
      if (cumulative >= o_.topP) break;
    }
    keep = i;
    total = 0;
    for (int64_t j = 0; j < keep; ++j) total += probs_[j];
  }
  // A uniform double in [0, 1) from 53 random bits: the same on every library.
  double u = static_cast<double>(rng_() >> 11) * 0x1.0p-53 * total;
  for (int64_t i = 0; i < keep; ++i) {
    u -= probs_[i];
    if (u < 0) return order_[i];
  }
  return order_[keep - 1];
}

}  // namespace tlc::generate
