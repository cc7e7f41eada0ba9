#include "runtime/train/mixture.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <random>

#include "formats/hash.h"

namespace fs = std::filesystem;

namespace tlc::train {
namespace {

constexpr double kMinShare = 1e-4;
constexpr int64_t kMinWindow = 64;

}  // namespace

TrainingData::TrainingData(const std::vector<DataSource> &sources, int64_t vocab, int64_t batch, int64_t seq,
                           uint64_t seed, bool shuffle)
    : sources_(sources), seed_(seed) {
  if (sources_.empty()) throw ConfigError("no training data: give --data DIR (or --data NAME=DIR:WEIGHT per source)");
  mixture_ = !(sources_.size() == 1 && sources_[0].name.empty());
  double total = 0;
  for (const DataSource &d : sources_) total += d.weight;
  for (const DataSource &d : sources_) {
    shares_.push_back(d.weight / total);
    if (shares_.back() < kMinShare)
      throw ConfigError("--data: source '" + d.name + "' is " + std::to_string(shares_.back()) +
                        " of the mixture, below the smallest share of 1e-4");
  }
  // A window long enough that every source supplies at least one
  // micro-batch per window (its quotas are then never negative).
  double smallest = *std::min_element(shares_.begin(), shares_.end());
  window_ = std::max<int64_t>(kMinWindow, static_cast<int64_t>(std::ceil(1.0 / smallest)));
  for (const DataSource &d : sources_) {
    // Sources shuffle independently: the seed is mixed with the name.
    uint64_t own = mixture_ ? seed ^ fnv1a64(d.name.data(), d.name.size()) : seed;
    data_.push_back(std::make_unique<Dataset>(d.dir, vocab, batch, seq, own, shuffle));
  }
  consumed_.assign(sources_.size(), 0);
}

std::vector<int64_t> TrainingData::cumulative(int64_t k) const {
  // Largest remainder of shares * W * k: exact totals, ties to the earlier source.
  int64_t total = window_ * k;
  std::vector<int64_t> counts(shares_.size());
  std::vector<std::pair<double, size_t>> remainders;
  int64_t assigned = 0;
  for (size_t s = 0; s < shares_.size(); ++s) {
    double target = shares_[s] * static_cast<double>(total);
    counts[s] = static_cast<int64_t>(std::floor(target));
    assigned += counts[s];
    remainders.push_back({target - std::floor(target), s});
  }
  std::stable_sort(remainders.begin(), remainders.end(),
                   [](const auto &a, const auto &b) { return a.first > b.first; });
  for (size_t i = 0; assigned < total; ++i, ++assigned) ++counts[remainders[i % remainders.size()].second];
  return counts;
}

void TrainingData::planWindow(int64_t k) {
  if (plannedWindow_ == k) return;
  windowStart_ = cumulative(k);
  std::vector<int64_t> end = cumulative(k + 1);
  order_.clear();
  for (size_t s = 0; s < shares_.size(); ++s) order_.insert(order_.end(), static_cast<size_t>(end[s] - windowStart_[s]),
                                                             static_cast<uint32_t>(s));
  std::seed_seq seq{static_cast<uint32_t>(seed_), static_cast<uint32_t>(seed_ >> 32), static_cast<uint32_t>(k),
                    static_cast<uint32_t>(k >> 32), 0x6d697875u};
  std::mt19937_64 rng(seq);
  for (size_t i = order_.size(); i > 1; --i) std::swap(order_[i - 1], order_[rng() % i]);
  plannedWindow_ = k;
}

size_t TrainingData::sourceOf(int64_t g) {
  planWindow(g / window_);
  return order_[static_cast<size_t>(g % window_)];
}

int64_t TrainingData::countBefore(size_t s, int64_t g) {
  planWindow(g / window_);
  int64_t n = windowStart_[s];
  for (int64_t i = 0; i < g % window_; ++i) n += order_[static_cast<size_t>(i)] == s;
  return n;
}

Batch TrainingData::next() {
  if (!mixture_) return data_[0]->next();
  size_t s = sourceOf(g_);
  int64_t c = consumed_[s], epoch = data_[s]->epochSize();
  Batch b = data_[s]->at({c / epoch, c % epoch});
  skip();
  return b;
}

void TrainingData::skip() {
  if (!mixture_) return data_[0]->skip();
  size_t s = sourceOf(g_);
  int64_t c = ++consumed_[s], epoch = data_[s]->epochSize();
  ++g_;
  if (c % epoch == 0)
    notices_.push_back("data source '" + sources_[s].name + "' begins epoch " + std::to_string(c / epoch + 1) +
                       " after " + std::to_string(c) + " micro-batches (" + sources_[s].dir + " holds " +
                       std::to_string(epoch) + " per epoch)");
}

Position TrainingData::position() const { return mixture_ ? Position{0, g_} : data_[0]->position(); }

void TrainingData::seek(Position p) {
  if (!mixture_) return data_[0]->seek(p);
  if (p.epoch != 0 || p.index < 0)
    throw DataError("the checkpoint's data position (epoch " + std::to_string(p.epoch) + ", micro-batch " +
                    std::to_string(p.index) + ") is not a mixture's: it was written without this mixture");
  g_ = p.index;
  for (size_t s = 0; s < sources_.size(); ++s) consumed_[s] = countBefore(s, g_);
}

std::vector<int64_t> TrainingData::consumed() const {
  if (mixture_) return consumed_;
  Position p = data_[0]->position();
  return {p.epoch * data_[0]->epochSize() + p.index};
}

std::vector<std::string> TrainingData::takeNotices() {
  std::vector<std::string> out;
  out.swap(notices_);
  return out;
}

std::string TrainingData::shardList() const {
  std::string list;
  for (size_t s = 0; s < data_.size(); ++s)
    for (const std::string &f : data_[s]->trainFiles())
      list += sources_[s].name + "/" + fs::path(f).filename().string() + ":" + std::to_string(fs::file_size(f)) + "\n";
  return list;
}

}  // namespace tlc::train
