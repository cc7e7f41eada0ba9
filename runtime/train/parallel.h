// Data parallelism for `tlrun train` (docs/distributed.md): which
// micro-batches and which flat ranges a rank owns, the gradient reductions
// of each ZeRO stage, the all-gather of updated parameters, and the small
// host messages (losses, norms, flags) every step agrees on. With one rank
// (and no NCCL) every call is a no-op and the trainer runs as before.
//
//   zero 0  all-reduce of the whole gradient buffer after the last
//           micro-batch; every rank updates everything (replicated).
//   zero 1  one reduce-scatter of the padded gradient buffer after the last
//           micro-batch; each rank updates its shard, then all-gather.
//   zero 2  after every micro-batch, the gradient buffer is reduced to the
//           owners in buckets (started from the end of the buffer); a rank
//           then zeroes the gradients it does not own, so the next
//           micro-batch adds onto its owned sums; update + all-gather.
//   zero 3  parameters sharded at rest: a rank holds the parameters it
//           owns. On host buffers (MPI) the compiler's communication plan
//           (runtime/exec/comm_points.h) gathers each group (layer) from its
//           owners one group ahead of its first reader and releases it after
//           its last, in train_step and eval_loss alike; rank 0's periodic
//           work gathers everything, then releases it. On device buffers
//           (NCCL) the whole buffer is gathered before the step instead.
//           Gradients are reduced to their owners every micro-batch, and a
//           rank releases the reduced gradients it does not own.
//
// Overlap (zero 1, 2, 3 on MPI, config key `overlap`): the steps of the
// compiled train_step report to stepHook(); a bucket whose gradients are all
// final (runtime/exec/comm_points.h) goes to a communication thread, which
// reduces it to its owner while the backward pass goes on (zero 1: in the
// step's last micro-batch, for the step's sums). afterMicroBatch() then waits
// only for the buckets still running. Same sums in the same order as without
// overlap (a bucket's reduce is its part of the reduce-scatter): the
// trajectory is bitwise unchanged. zero 3's gathers run on the same thread,
// in the order every rank issues them.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "runtime/comm/communicator.h"
#include "runtime/comm/sharding.h"
#include "runtime/exec/device.h"
#include "runtime/train/training_state.h"

namespace tlc::train {

class DataParallel {
 public:
  // `flatElements`: the artifact's flat size; `bucketMb`: zero=2's buckets.
  DataParallel(comm::Communicator &c, Device &device, int zero, int64_t flatElements, double bucketMb,
               bool overlap = false);
  ~DataParallel();

  int rank() const { return comm_.rank(); }
  int world() const { return comm_.size(); }
  int zero() const { return zero_; }
  const shard::Layout &layout() const { return layout_; }
  comm::Communicator &comm() { return comm_; }
  // What this rank keeps optimizer state for (zero 0: everything).
  Range optimizerRange() const;
  // What this rank saves in checkpoints: its owned range (in every mode).
  Range savedRange() const { return layout_.ownedBy(rank()); }
  // Whether the gradient and parameter collectives run: with several ranks,
  // and with NCCL on one (TLC_COMM_BACKEND=nccl: the GPU check exercises the
  // device-buffer path). One MPI-less rank skips them.
  bool active() const { return world() > 1 || comm_.deviceBuffers(); }
  // The flat buffers' allocated size: padded to equal shards when active.
  int64_t allocatedElements() const;
  // Rank r computes micro-batches [first, first + count) of every step's
  // `accum` (which the world size must divide).
  int64_t firstMicroBatch(int64_t accum) const { return rank() * (accum / world()); }

  void attach(TrainingState &e);
  // For a run of entry point `entry` (train_step: a micro-batch, ended by
  // afterMicroBatch(); eval_loss): does what the plan wants before its first
  // step (zero=3: the first gathers) and returns the hook for its steps
  // (Executor::run's afterStep): zero=3's gathers and releases, and with
  // overlap the buckets whose gradients have become final. Empty when there
  // is nothing to do. zero=1 reduces its buckets (with overlap) during the
  // step's `lastMicroBatch` only.
  std::function<void(size_t step)> stepHook(const char *entry = artifact::kTrainStep, bool lastMicroBatch = true);
  // zero 2: reduce to owners; zero 3: reduce-scatter; zero 1 with overlap,
  // after the last micro-batch: wait for its buckets.
  void afterMicroBatch();
  // Waits for the buckets already handed to the communication thread (each
  // bounded by comm_timeout_s): before the training state's buffers go away
  // while an error unwinds mid-micro-batch.
  void quiesce() noexcept;
  void afterAccumulation();  // zero 0: all-reduce; zero 1: reduce-scatter
  // After the optimizer updated this rank's shard: zero 1, 2 all-gather the
  // updated shards; zero 3 releases the others (sharded at rest).
  void afterUpdate();
  // Before a run of train_step or eval_loss: zero 3 without a plan (device
  // buffers) all-gathers the shards unless already whole; with one, the
  // run's hooks gather what it reads.
  void beforeRun();
  // Before anything reads the whole parameter buffer (every rank calls it at
  // the same points): zero 3 all-gathers the shards unless already whole;
  // doneWithFullParams() releases them again where a plan gathers per group.
  void needFullParams();
  void doneWithFullParams();
  // zero 3 (active): the flat range of parameters a rank keeps at rest, its
  // shard; otherwise everything. Loading weights touches only this range.
  Range paramsAtRest() const;
  // zero 2, 3: zeroes the owned gradients and releases the rest (the
  // training state's zeroGrads() otherwise).
  void zeroGrads();
  // zero 3 with a plan: the most elements of parameters gathered at once
  // (train_step's or eval_loss's peak); -1: the whole buffer.
  int64_t gatheredElements() const;

  // Sum over ranks in rank order of one double per rank (host).
  double sumOverRanks(double mine);
  // Every rank's `mine` (same length on every rank), in rank order (host).
  std::vector<double> allGather(const std::vector<double> &mine);
  void barrier();

  // Seconds spent in collectives since the last call (with overlap: the
  // main thread's wait for them, what is not hidden).
  double takeCommSeconds();
  bool overlapping() const { return overlap_ != nullptr; }
  // With overlap, since the last call: seconds the communication thread
  // spent reducing, and how many of them fell while the step computed.
  struct Overlapped {
    double busy = 0, hidden = 0;
  };
  Overlapped takeOverlapped();

 private:
  struct Timer {
    explicit Timer(double &total) : total_(total), start_(std::chrono::steady_clock::now()) {}
    ~Timer() { total_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }
    double &total_;
    std::chrono::steady_clock::time_point start_;
  };
  comm::Communicator &comm_;
  Device &device_;
  int zero_;
  shard::Layout layout_;
  std::vector<shard::Bucket> buckets_;
  TrainingState *engine_ = nullptr;
  struct Overlap;  // the communication thread and its queue (parallel.cpp)
  std::unique_ptr<Overlap> overlap_;
  bool wantOverlap_ = false;
  bool paramsWhole_ = false;  // zero 3: the params buffer holds every shard's current values
  double commSeconds_ = 0;
  // zero 3 on host buffers: the artifact's plan of each entry point run.
  struct EntryPlan {
    std::vector<artifact::CommEvent> events;  // gathers and releases, by `after`
    size_t next = 0;                          // events[next..] not done in this run
    std::vector<char> arrived;                // per event: a gather has completed
  };
  bool perGroup_ = false;
  bool reducing_ = false;  // this train_step run hands buckets to the communication thread
  std::vector<EntryPlan> plans_;  // per entry point of the artifact
  void allGatherParams();
  void releaseOthersParams();
  void releaseOthersGrads();
  void releaseOutsideShard(FlatBuffer which, Range r);
  void reduceBucket(size_t i);
  void gatherGroup(int group);
  void releaseGroup(int group);
  void planEvents(EntryPlan &p, int64_t after);  // issues the events after step `after`
  void waitGathers(EntryPlan &p, int64_t need);  // before step `need`
};

// A digest of a text (the data files, the configuration) for
// requireSameOnAllRanks; files use fileFnv1a64 (checkpoint.h).
uint64_t textDigest(const std::string &text);

}  // namespace tlc::train
