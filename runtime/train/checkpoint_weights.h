// The weights of a checkpoint, in either form (model.safetensors, or the
// range files of checkpoint_weights=sharded), for the commands that read
// weights only: tlrun generate, eval, evaluate (through hf::InitWeights),
// export and train --init-from. Every tensor is read through
// readMasterTensor (checkpoint.h), in chunks: the one path for both forms.
#pragma once

#include <string>
#include <vector>

#include "runtime/train/checkpoint.h"

namespace tlc::train {

class CheckpointWeights {
 public:
  // state.json's layout and the weight files' headers and sizes; throws
  // CheckpointError naming the file. The checksums are the caller's
  // (verifyCheckpointWeights, which also warns about the optimizer's files).
  static CheckpointWeights open(const std::string &dir);

  const std::string &dir() const { return dir_; }
  const Layout &layout() const { return snap_.layout; }
  int64_t step() const { return snap_.state.step; }
  bool sharded() const { return !snap_.weightParts.empty(); }
  // nullptr when the checkpoint has no such tensor.
  const TensorSlot *find(const std::string &name) const;
  // A tensor's f32 values in pieces [begin, end) of the tensor's elements.
  void read(const TensorSlot &t, const std::function<void(int64_t begin, int64_t end, const float *values)> &visit,
            int64_t chunk = kCheckpointChunkElements) const;
  // A whole tensor, checked against the shape a model needs; throws
  // CheckpointError naming the checkpoint and the tensor.
  std::vector<float> values(const std::string &name, const std::vector<int64_t> &shape) const;
  // The files read, for log lines: DIR/model.safetensors, or the range files.
  std::string describe() const;

 private:
  std::string dir_;
  Snapshot snap_;  // state, layout and weight files; no data
};

}  // namespace tlc::train
