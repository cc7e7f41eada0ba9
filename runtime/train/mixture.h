// The training stream over one or more data sources (docs/training.md,
// "Data mixtures"). One unnamed source is a Dataset as it always was. Named
// sources with weights w_s form a mixture: micro-batch g of the run is drawn
// from the source that a fixed plan gives it. The plan cuts the stream into
// windows of W micro-batches; by the end of window k source s has supplied
// its largest-remainder share of W*(k+1) (so every window is within one
// micro-batch of w_s * W, and the running totals never drift), and the order
// inside a window is a permutation seeded by (seed, k). Each source reads its
// own micro-batches in its own Dataset order (seeded by seed and its name),
// starting a new epoch when it runs out. Everything is a function of g: the
// position in a checkpoint is g alone, and ranks that take different g never
// overlap.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "runtime/train/config.h"
#include "runtime/train/data.h"

namespace tlc::train {

class TrainingData {
 public:
  // Opens every source (a Dataset each; errors name the directory). Shares
  // below 1e-4 of the mixture are refused (ConfigError).
  TrainingData(const std::vector<DataSource> &sources, int64_t vocab, int64_t batch, int64_t seq, uint64_t seed,
               bool shuffle);

  bool mixture() const { return mixture_; }
  size_t sources() const { return data_.size(); }
  const DataSource &source(size_t s) const { return sources_[s]; }
  double share(size_t s) const { return shares_[s]; }

  Batch next();
  void skip();
  // One source: the Dataset's (epoch, micro-batch). A mixture: epoch 0,
  // index g. seek throws DataError when p cannot be this data's.
  Position position() const;
  void seek(Position p);

  // Micro-batches each source has supplied before position().
  std::vector<int64_t> consumed() const;
  // "data source 'x' begins epoch N ..." for sources that ran out since the last call.
  std::vector<std::string> takeNotices();

  bool hasValidation(size_t s) const { return data_[s]->hasValidation(); }
  int64_t validationBatches(size_t s) const { return data_[s]->validationBatches(); }
  Batch validation(size_t s, int64_t i) { return data_[s]->validation(i); }

  // "name/file:bytes" lines of every training shard: what ranks compare.
  std::string shardList() const;

  // The plan, exposed for tests: the source of micro-batch g and the
  // micro-batches of source s among the first g.
  size_t sourceOf(int64_t g);
  int64_t countBefore(size_t s, int64_t g);
  int64_t window() const { return window_; }

 private:
  void planWindow(int64_t k);
  std::vector<int64_t> cumulative(int64_t k) const;  // per source, through window k-1

  std::vector<DataSource> sources_;
  std::vector<double> shares_;
  std::vector<std::unique_ptr<Dataset>> data_;
  bool mixture_ = false;
  uint64_t seed_ = 0;
  int64_t g_ = 0, window_ = 1;
  int64_t plannedWindow_ = -1;
  std::vector<uint32_t> order_;             // the planned window's sources
  std::vector<int64_t> windowStart_;        // per source, before the planned window
  std::vector<int64_t> consumed_;           // per source, before g_
  std::vector<std::string> notices_;
};

}  // namespace tlc::train
