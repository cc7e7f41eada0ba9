#include "runtime/train/parallel.h"

#include <cstring>
#include <memory>

#include "runtime/train/checkpoint.h"

namespace tlc::train {

DataParallel::DataParallel(comm::Communicator &c, Device &device, int zero, int64_t flatElements, double bucketMb)
    : comm_(c), device_(device), zero_(zero), layout_(shard::makeLayout(flatElements, c.size())) {
  if (world() > 1 && layout_.ownedBy(rank()).size() == 0 && zero_ > 0)
    throw shard::ShardError("the model's " + std::to_string(flatElements) + " flat elements are too few for " +
                            std::to_string(world()) + " ranks with sharded optimizer state (rank " +
                            std::to_string(rank()) + " would own nothing): use fewer ranks or zero=0");
  int64_t bucketElements = std::max<int64_t>(1, static_cast<int64_t>(bucketMb * (1 << 20) / 4));
  buckets_ = shard::buckets(layout_, bucketElements);
}

Range DataParallel::optimizerRange() const {
  return zero_ == 0 || world() == 1 ? Range{0, layout_.elements} : layout_.ownedBy(rank());
}

int64_t DataParallel::allocatedElements() const { return active() ? layout_.padded() : layout_.elements; }

void DataParallel::attach(TrainingState &e) { engine_ = &e; }

void DataParallel::afterMicroBatch() {
  if (!active() || zero_ != 2) return;
  Timer t(commSeconds_);
  float *grads = static_cast<float *>(engine_->devicePointer(FlatBuffer::Grads));
  // The backward pass writes the last parameters' gradients first: the
  // buckets at the end are started first. (The compiled step is one call,
  // so they start after it returns: see docs/distributed.md.)
  std::vector<std::unique_ptr<comm::Work>> started;
  for (size_t i = buckets_.size(); i-- > 0;) {
    const shard::Bucket &b = buckets_[i];
    float *p = grads + b.range.begin;
    started.push_back(comm_.start({comm::Op::Reduce, p, p, static_cast<size_t>(b.range.size()), comm::DType::F32, b.owner}));
  }
  for (auto &w : started) w->wait();
  // Only the owned sums stay: the next micro-batch adds onto them.
  Range mine = layout_.shardOf(rank());
  if (mine.begin > 0) device_.zero(grads, static_cast<size_t>(mine.begin) * sizeof(float));
  if (mine.end < layout_.padded())
    device_.zero(grads + mine.end, static_cast<size_t>(layout_.padded() - mine.end) * sizeof(float));
}

void DataParallel::afterAccumulation() {
  if (!active() || zero_ == 2) return;
  Timer t(commSeconds_);
  float *grads = static_cast<float *>(engine_->devicePointer(FlatBuffer::Grads));
  if (zero_ == 0) {
    comm_.allReduce(grads, static_cast<size_t>(layout_.padded()), comm::DType::F32);
  } else {
    comm_.reduceScatter(grads, grads + layout_.shardOf(rank()).begin, static_cast<size_t>(layout_.shard),
                        comm::DType::F32);
  }
}

void DataParallel::gatherParams() {
  if (!active() || zero_ == 0) return;
  Timer t(commSeconds_);
  bool bf16 = engine_->artifact().paramDType() == artifact::DType::BF16;
  size_t bytes = bf16 ? 2 : 4;
  char *params = static_cast<char *>(engine_->devicePointer(FlatBuffer::Params));
  comm_.allGather(params + layout_.shardOf(rank()).begin * bytes, params, static_cast<size_t>(layout_.shard),
                  bf16 ? comm::DType::BF16 : comm::DType::F32);
}

std::vector<double> DataParallel::allGather(const std::vector<double> &mine) {
  if (world() == 1) return mine;
  Timer t(commSeconds_);
  std::vector<double> all(mine.size() * static_cast<size_t>(world()));
  std::memcpy(all.data() + mine.size() * static_cast<size_t>(rank()), mine.data(), mine.size() * sizeof(double));
  size_t bytes = mine.size() * sizeof(double);
  char *base = reinterpret_cast<char *>(all.data());
  comm_.host().allGather(base + bytes * static_cast<size_t>(rank()), base, bytes, comm::DType::U8);
  return all;
}

double DataParallel::sumOverRanks(double mine) {
  double sum = 0;
  for (double x : allGather({mine})) sum += x;
  return sum;
}

void DataParallel::barrier() {
  if (world() == 1) return;
  Timer t(commSeconds_);
  comm_.host().barrier();
}

double DataParallel::takeCommSeconds() {
  double s = commSeconds_;
  commSeconds_ = 0;
  return s;
}

uint64_t textDigest(const std::string &text) { return fnv1a64(text.data(), text.size()); }

}  // namespace tlc::train
