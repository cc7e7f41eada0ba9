#include "runtime/train/parallel.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <thread>

#include "runtime/exec/comm_points.h"
#include "runtime/train/checkpoint.h"

namespace tlc::train {

struct DataParallel::Overlap {
  using Clock = std::chrono::steady_clock;
  // A bucket to reduce, or a gather of a plan (event `index` of `plan`).
  struct Job {
    size_t index = 0;
    EntryPlan *plan = nullptr;
  };
  std::vector<size_t> order;   // bucket indices in the order their gradients become final
  std::vector<int64_t> ready;  // ready[k]: the step after which order[k] may be reduced
  size_t next = 0;             // order[next..] not handed over yet (main thread only)
  Clock::time_point computeStart;
  std::mutex mu;
  std::condition_variable wake, done;
  std::deque<Job> queue;
  size_t outstanding = 0;  // handed over, not finished
  bool stop = false;
  std::exception_ptr error;
  std::vector<std::pair<Clock::time_point, Clock::time_point>> spans;  // reductions of this micro-batch
  Overlapped totals;
  std::thread thread;

  void handOver(int64_t step) {
    std::lock_guard<std::mutex> l(mu);
    size_t before = next;
    while (next < order.size() && ready[next] <= step) {
      queue.push_back({order[next++], nullptr});
      ++outstanding;
    }
    if (next != before) wake.notify_one();
  }
  void handOverGather(EntryPlan &p, size_t event) {
    std::lock_guard<std::mutex> l(mu);
    queue.push_back({event, &p});
    ++outstanding;
    wake.notify_one();
  }
};

DataParallel::DataParallel(comm::Communicator &c, Device &device, int zero, int64_t flatElements, double bucketMb,
                           bool overlap)
    : comm_(c), device_(device), zero_(zero), layout_(shard::makeLayout(flatElements, c.size())) {
  // On host buffers only: a GPU's kernels are still running when their step
  // is issued (NCCL would need events on the compute stream).
  wantOverlap_ = overlap && zero >= 1 && c.size() > 1 && !c.deviceBuffers() && c.serializedThreads();
  if (world() > 1 && layout_.ownedBy(rank()).size() == 0 && zero_ > 0)
    throw shard::ShardError("the model's " + std::to_string(flatElements) + " flat elements are too few for " +
                            std::to_string(world()) + " ranks with sharded optimizer state (rank " +
                            std::to_string(rank()) + " would own nothing): use fewer ranks or zero=0");
  int64_t bucketElements = std::max<int64_t>(1, static_cast<int64_t>(bucketMb * (1 << 20) / 4));
  buckets_ = shard::buckets(layout_, bucketElements);
  perGroup_ = zero_ == 3 && active() && !c.deviceBuffers();
}

Range DataParallel::optimizerRange() const {
  return zero_ == 0 || world() == 1 ? Range{0, layout_.elements} : layout_.ownedBy(rank());
}

int64_t DataParallel::allocatedElements() const { return active() ? layout_.padded() : layout_.elements; }

DataParallel::~DataParallel() {
  if (!overlap_) return;
  bool idle;
  {
    std::lock_guard<std::mutex> l(overlap_->mu);
    overlap_->stop = true;
    idle = overlap_->outstanding == 0;
  }
  overlap_->wake.notify_one();
  // Unwinding from an error mid-micro-batch: a reduction may wait for peers
  // that will not come; the job is ending, so the thread is left to it.
  if (idle) overlap_->thread.join();
  else overlap_->thread.detach();
}

void DataParallel::attach(TrainingState &e) {
  engine_ = &e;
  const artifact::Artifact &a = e.artifact();
  perGroup_ = perGroup_ && !a.groups.empty();
  if (perGroup_ && plans_.empty())
    for (const artifact::EntryPoint &entry : a.entries) {
      EntryPlan p;
      for (const artifact::CommEvent &c : entry.comm)
        if (c.kind != artifact::CommEvent::GradsFinal) p.events.push_back(c);
      p.arrived.assign(p.events.size(), 0);
      plans_.push_back(std::move(p));
    }
  if (!wantOverlap_ || overlap_) return;
  CommPoints points = commPoints(a, *a.entry(artifact::kTrainStep));
  auto o = std::make_unique<Overlap>();
  std::vector<std::pair<int64_t, size_t>> byStep;
  for (size_t i = 0; i < buckets_.size(); ++i) byStep.push_back({points.gradsFinalAfter(a, buckets_[i].range), i});
  // Ties (one tensor's buckets): the end of the buffer first, as without overlap.
  std::stable_sort(byStep.begin(), byStep.end(),
                   [](const auto &x, const auto &y) { return x.first < y.first || (x.first == y.first && x.second > y.second); });
  for (auto &[step, i] : byStep) {
    o->ready.push_back(step);
    o->order.push_back(i);
  }
  Overlap *raw = o.get();
  o->thread = std::thread([this, raw] {
    Overlap &v = *raw;
    for (;;) {
      Overlap::Job job;
      bool failed;
      {
        std::unique_lock<std::mutex> l(v.mu);
        v.wake.wait(l, [&] { return v.stop || !v.queue.empty(); });
        if (v.queue.empty()) return;
        job = v.queue.front();
        v.queue.pop_front();
        failed = v.error != nullptr;
      }
      Overlap::Clock::time_point t0 = Overlap::Clock::now();
      std::exception_ptr error;
      if (!failed) try {
          if (job.plan) gatherGroup(job.plan->events[job.index].group);
          else reduceBucket(job.index);
        } catch (...) {
          error = std::current_exception();
        }
      {
        std::lock_guard<std::mutex> l(v.mu);
        v.spans.push_back({t0, Overlap::Clock::now()});
        if (error && !v.error) v.error = error;
        if (job.plan) job.plan->arrived[job.index] = 1;
        --v.outstanding;
      }
      v.done.notify_all();
    }
  });
  overlap_ = std::move(o);
}

std::function<void(size_t)> DataParallel::stepHook(const char *entry, bool lastMicroBatch) {
  bool train = std::string(entry) == artifact::kTrainStep;
  // zero=1 reduces only the step's sums: during its last micro-batch.
  Overlap *o = train && (zero_ >= 2 || lastMicroBatch) ? overlap_.get() : nullptr;
  if (train) reducing_ = o != nullptr;
  EntryPlan *plan = nullptr;
  const artifact::EntryPoint *e = engine_->artifact().entry(entry);
  if (perGroup_ && e) {
    plan = &plans_.at(static_cast<size_t>(e - engine_->artifact().entries.data()));
    plan->next = 0;
    std::fill(plan->arrived.begin(), plan->arrived.end(), 0);
  }
  if (o) {
    o->next = 0;
    o->computeStart = Overlap::Clock::now();
  }
  if (plan) {
    planEvents(*plan, -1);
    waitGathers(*plan, 0);
  }
  if (!o && !plan) return {};
  return [this, o, plan](size_t step) {
    int64_t s = static_cast<int64_t>(step);
    if (plan) planEvents(*plan, s);
    if (o) o->handOver(s);
    if (plan) waitGathers(*plan, s + 1);
  };
}

// Releases now; gathers on the communication thread when there is one
// (waited for by waitGathers), else at once.
void DataParallel::planEvents(EntryPlan &p, int64_t after) {
  for (; p.next < p.events.size() && p.events[p.next].after <= after; ++p.next) {
    const artifact::CommEvent &c = p.events[p.next];
    if (c.kind == artifact::CommEvent::Release) {
      releaseGroup(c.group);
    } else if (overlap_) {
      overlap_->handOverGather(p, p.next);
    } else {
      Timer t(commSeconds_);
      gatherGroup(c.group);
      p.arrived[p.next] = 1;
    }
  }
}

void DataParallel::waitGathers(EntryPlan &p, int64_t need) {
  for (size_t k = 0; k < p.next; ++k) {
    const artifact::CommEvent &c = p.events[k];
    if (c.kind != artifact::CommEvent::Gather || c.need != need || p.arrived[k]) continue;
    Timer t(commSeconds_);
    std::unique_lock<std::mutex> l(overlap_->mu);
    overlap_->done.wait(l, [&] { return p.arrived[k] || overlap_->error; });
    if (overlap_->error) std::rethrow_exception(std::exchange(overlap_->error, nullptr));
  }
}

// A group's parameters from their owners: one broadcast per owner of a part
// of it, in rank order (copies: the values are bitwise those of the owners).
void DataParallel::gatherGroup(int group) {
  const artifact::ParamGroup &g = engine_->artifact().groups.at(static_cast<size_t>(group));
  bool bf16 = engine_->artifact().paramDType() == artifact::DType::BF16;
  size_t bytes = bf16 ? 2 : 4;
  char *params = static_cast<char *>(engine_->devicePointer(FlatBuffer::Params));
  std::vector<std::unique_ptr<comm::Work>> started;
  for (int r = 0; r < world(); ++r) {
    Range s = layout_.shardOf(r);
    int64_t b = std::max(g.begin, s.begin), e = std::min(g.end, s.end);
    if (b >= e) continue;
    char *p = params + b * static_cast<int64_t>(bytes);
    started.push_back(comm_.start({comm::Op::Broadcast, p, p, static_cast<size_t>(e - b),
                                   bf16 ? comm::DType::BF16 : comm::DType::F32, r}));
  }
  for (auto &w : started) w->wait();
}

// The group's parameters this rank does not own read as zeros again (so a
// read the plan did not gather shows in the trajectory), their pages freed.
void DataParallel::releaseGroup(int group) {
  if (paramsWhole_) return;  // gathered for periodic work: released by doneWithFullParams
  const artifact::ParamGroup &g = engine_->artifact().groups.at(static_cast<size_t>(group));
  releaseOutsideShard(FlatBuffer::Params, {g.begin, g.end});
}

// Elements `r` of a flat buffer (params or grads) except this rank's shard:
// zeroed, and on the host their whole pages returned to the system.
void DataParallel::releaseOutsideShard(FlatBuffer which, Range r) {
  size_t bytes = which == FlatBuffer::Grads ? sizeof(float) : artifact::dtypeSize(engine_->artifact().paramDType());
  char *base = static_cast<char *>(engine_->devicePointer(which));
  Range mine = layout_.shardOf(rank());
  auto release = [&](int64_t b, int64_t e) {
    if (b < e) device_.decommit(base + b * static_cast<int64_t>(bytes), static_cast<size_t>(e - b) * bytes);
  };
  release(r.begin, std::min(r.end, mine.begin));
  release(std::max(r.begin, mine.end), r.end);
}

void DataParallel::quiesce() noexcept {
  if (!overlap_) return;
  std::unique_lock<std::mutex> l(overlap_->mu);
  overlap_->done.wait(l, [&] { return overlap_->outstanding == 0; });
}

void DataParallel::reduceBucket(size_t i) {
  const shard::Bucket &b = buckets_[i];
  float *p = static_cast<float *>(engine_->devicePointer(FlatBuffer::Grads)) + b.range.begin;
  comm_.start({comm::Op::Reduce, p, p, static_cast<size_t>(b.range.size()), comm::DType::F32, b.owner})->wait();
  // The next micro-batch adds onto zeros here; until then the pages are free.
  if (b.owner != rank()) device_.decommit(p, static_cast<size_t>(b.range.size()) * sizeof(float));
}

DataParallel::Overlapped DataParallel::takeOverlapped() {
  Overlapped o;
  if (overlap_) std::swap(o, overlap_->totals);
  return o;
}

void DataParallel::afterMicroBatch() {
  if (!active() || zero_ == 0 || (zero_ == 1 && !reducing_)) return;
  Timer t(commSeconds_);
  float *grads = static_cast<float *>(engine_->devicePointer(FlatBuffer::Grads));
  if (overlap_) {
    // The buckets not yet handed over (none, once every step has run), then
    // the wait for the rest: the part of the communication not hidden.
    reducing_ = false;
    Overlap &o = *overlap_;
    Overlap::Clock::time_point computeEnd = Overlap::Clock::now();
    o.handOver(std::numeric_limits<int64_t>::max());
    std::unique_lock<std::mutex> l(o.mu);
    o.done.wait(l, [&] { return o.outstanding == 0; });
    for (auto &[b, e] : o.spans) {
      o.totals.busy += std::chrono::duration<double>(e - b).count();
      auto hb = std::max(b, o.computeStart), he = std::min(e, computeEnd);
      if (hb < he) o.totals.hidden += std::chrono::duration<double>(he - hb).count();
    }
    o.spans.clear();
    if (o.error) std::rethrow_exception(std::exchange(o.error, nullptr));
    if (zero_ == 1) return;  // its whole gradients stay until the next step's zeroGrads
  } else if (zero_ == 3) {
    // One reduce-scatter in place: the owner's shard adds this micro-batch
    // of every rank onto its running sum (the others zeroed theirs below).
    comm_.reduceScatter(grads, grads + layout_.shardOf(rank()).begin, static_cast<size_t>(layout_.shard),
                        comm::DType::F32);
  } else {
    // Without overlap the buckets start once the step has returned; the
    // backward pass writes the last parameters' gradients first, so the
    // buckets at the end are started first.
    std::vector<std::unique_ptr<comm::Work>> started;
    for (size_t i = buckets_.size(); i-- > 0;) {
      const shard::Bucket &b = buckets_[i];
      float *p = grads + b.range.begin;
      started.push_back(comm_.start({comm::Op::Reduce, p, p, static_cast<size_t>(b.range.size()), comm::DType::F32, b.owner}));
    }
    for (auto &w : started) w->wait();
  }
  // Only the owned sums stay: the next micro-batch adds onto them.
  releaseOthersGrads();
}

void DataParallel::releaseOthersGrads() { releaseOutsideShard(FlatBuffer::Grads, {0, layout_.padded()}); }

void DataParallel::zeroGrads() {
  if (!active() || zero_ < 2) return engine_->zeroGrads();
  Range mine = layout_.shardOf(rank());
  device_.zero(static_cast<float *>(engine_->devicePointer(FlatBuffer::Grads)) + mine.begin,
               static_cast<size_t>(mine.size()) * sizeof(float));
  releaseOthersGrads();
}

void DataParallel::afterAccumulation() {
  // zero=1 with overlap: reduced during the last micro-batch (afterMicroBatch).
  if (!active() || zero_ >= 2 || (zero_ == 1 && overlap_)) return;
  Timer t(commSeconds_);
  float *grads = static_cast<float *>(engine_->devicePointer(FlatBuffer::Grads));
  if (zero_ == 0) {
    comm_.allReduce(grads, static_cast<size_t>(layout_.padded()), comm::DType::F32);
  } else {
    comm_.reduceScatter(grads, grads + layout_.shardOf(rank()).begin, static_cast<size_t>(layout_.shard),
                        comm::DType::F32);
  }
}

void DataParallel::afterUpdate() {
  if (!active() || zero_ == 0) return;
  if (zero_ == 3) return releaseOthersParams();
  allGatherParams();
}

void DataParallel::beforeRun() {
  if (!perGroup_) needFullParams();
}

void DataParallel::needFullParams() {
  if (!active() || zero_ != 3 || paramsWhole_) return;
  allGatherParams();
  paramsWhole_ = true;
}

void DataParallel::doneWithFullParams() {
  if (perGroup_ && paramsWhole_) releaseOthersParams();
}

Range DataParallel::paramsAtRest() const {
  return zero_ == 3 && active() ? layout_.shardOf(rank()) : Range{0, layout_.padded()};
}

int64_t DataParallel::gatheredElements() const {
  if (zero_ != 3 || !active()) return 0;
  if (!perGroup_) return -1;
  const artifact::Artifact &a = engine_->artifact();
  int64_t peak = 0;
  for (const char *name : {artifact::kTrainStep, artifact::kEvalLoss})
    if (const artifact::EntryPoint *e = a.entry(name)) peak = std::max(peak, peakGatheredElements(a, *e));
  return peak;
}

// The parameters outside this rank's shard are stale after its update:
// released, so that a read without a gather shows in the trajectory.
void DataParallel::releaseOthersParams() {
  paramsWhole_ = false;
  releaseOutsideShard(FlatBuffer::Params, {0, layout_.padded()});
}

void DataParallel::allGatherParams() {
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
