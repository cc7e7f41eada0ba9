// Runs the entry points of a compiled artifact: owns the device buffers
// (arena, error flag, the flat parameter and gradient buffers, every entry
// point's inputs and outputs) and walks an entry point's schedule. The
// TrainingState (engine.h) builds the training state on top of it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "formats/artifact.h"
#include "runtime/exec/device.h"

namespace tlc {

class Executor {
 public:
  // Allocates every buffer and JIT-compiles (or loads cached) kernels.
  // The flat buffers hold `flatElements` elements (at least the artifact's;
  // 0: the artifact's): data parallelism pads them to equal shards.
  // With `only` (entry point names), the arena, inputs and outputs are sized
  // for those entry points alone (and no gradient buffer unless one of them
  // writes gradients): generation needs neither the training step's arena
  // nor gradients.
  Executor(const artifact::Artifact &a, Device &device, int64_t flatElements = 0,
           const std::vector<std::string> &only = {});
  ~Executor();  // prints the profile when TLC_PROFILE is set
  Executor(const Executor &) = delete;
  Executor &operator=(const Executor &) = delete;

  // The index of entry point `name`; throws artifact::Error when absent.
  size_t entryIndex(const std::string &name) const;

  // Parameter i from host bytes in its dtype, into the flat params buffer.
  void setParam(size_t i, const void *host);
  // Input i from host bytes; for a run of micro-batch `batch` (0: the
  // compiled one) only its first `batch` rows.
  void setInput(size_t entry, size_t i, const void *host, int64_t batch = 0);
  // Runs every step of the entry point for micro-batch `batch` (0: the
  // compiled one; up to it where the entry point allows, see
  // artifact::EntryPoint::batch); throws DeviceError naming the op whose
  // kernel reported an out-of-range index, artifact::Error for a batch the
  // entry point cannot run. `afterStep(i)`, when given, is called once step
  // i has been issued (on the CPU device: has finished; a GPU caller must
  // order its own work after the device's stream): data parallelism starts
  // a gradient bucket's reduction as soon as its last writer has run.
  // Where the device has graphs, a run without `afterStep` may replay the
  // steps as one captured graph (see graphs_ below): the same kernels, in
  // the same order.
  void run(size_t entry, int64_t batch = 0, const std::function<void(size_t step)> &afterStep = {});
  // The micro-batch `batch` stands for (0: the compiled one), checked.
  int64_t resolveBatch(size_t entry, int64_t batch) const;
  void getOutput(size_t entry, size_t o, void *host);
  // Bytes [offset, offset + bytes) of output o: the part of a large output
  // the host needs (the logits of a few positions); throws artifact::Error
  // for a range outside it.
  void getOutputBytes(size_t entry, size_t o, void *host, int64_t offset, int64_t bytes);
  // Exchanges the device buffers of input i and output o (of equal size):
  // state an entry point carries from one run to the next (a KV cache)
  // stays on the device, double-buffered.
  void swapInputOutput(size_t entry, size_t i, size_t o);

  void *flatParams() const { return params_; }  // compute dtype
  void *flatGrads() const { return grads_; }    // f32, accumulated into by train_step
  Device &device() const { return device_; }
  const artifact::Artifact &artifact() const { return a_; }

 private:
  void *pointer(size_t entry, int buffer) const;
  void issueSteps(size_t entry, int64_t batch, const std::function<void(size_t step)> &afterStep);
  bool replayed(size_t entry, int64_t batch);
  void *capture(size_t entry, int64_t batch);
  void graphsOff(const char *what, const std::string &why);
  void releaseGraphs();
  void printProfile() const;

  const artifact::Artifact &a_;
  Device &device_;
  void *arena_ = nullptr, *params_ = nullptr, *grads_ = nullptr;
  int *error_ = nullptr;
  std::vector<std::vector<void *>> inputs_, outputs_;  // per entry point
  // With TLC_PROFILE set: seconds per step, summed over runs (each step is
  // synchronised, so the figures are per kernel, not overlapped).
  bool profile_ = false;
  std::vector<std::vector<double>> stepSeconds_;
  // Graphs of runs, keyed by entry point, run batch and the entry point's
  // input and output pointers (swapInputOutput changes them; the arena and
  // flat buffers never move): the first run of a key is eager (it plans the
  // GEMMs and checks the steps), the second captures and replays, later ones
  // replay. Off with TLC_CUDA_GRAPHS=0, under TLC_PROFILE (per-step times),
  // on a device without graphs, and from the first failed capture on.
  struct Graph {
    int runs = 0;
    void *graph = nullptr;
  };
  bool graphs_ = true;
  std::map<std::vector<uintptr_t>, Graph> graphCache_;
};

}  // namespace tlc
