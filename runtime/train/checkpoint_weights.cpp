#include "runtime/train/checkpoint_weights.h"

#include <cstring>

namespace tlc::train {

CheckpointWeights CheckpointWeights::open(const std::string &dir) {
  CheckpointWeights w;
  w.dir_ = dir;
  w.snap_ = readCheckpointWeights(dir);
  return w;
}

const TensorSlot *CheckpointWeights::find(const std::string &name) const {
  for (const TensorSlot &t : snap_.layout.tensors)
    if (t.name == name) return &t;
  return nullptr;
}

void CheckpointWeights::read(const TensorSlot &t, const std::function<void(int64_t, int64_t, const float *)> &visit,
                             int64_t chunk) const {
  readMasterTensor(dir_, snap_, t, [&](int64_t b, int64_t e, const float *v) { visit(b - t.offset, e - t.offset, v); },
                   chunk);
}

std::vector<float> CheckpointWeights::values(const std::string &name, const std::vector<int64_t> &shape) const {
  // Sharded, the tensors are those of state.json's layout.
  std::string where = dir_ + (sharded() ? "/state.json" : "/model.safetensors");
  const TensorSlot *t = find(name);
  if (!t)
    throw CheckpointError(where + ": has no tensor '" + name + "' (the model needs it with shape " + shapeText(shape) +
                          ")");
  if (t->shape != shape)
    throw CheckpointError(where + ": tensor '" + name + "' has shape " + shapeText(t->shape) + " but the model needs " +
                          shapeText(shape));
  std::vector<float> out(static_cast<size_t>(t->numel));
  read(*t, [&](int64_t b, int64_t e, const float *v) { std::memcpy(out.data() + b, v, static_cast<size_t>(e - b) * 4); });
  return out;
}

std::string CheckpointWeights::describe() const {
  if (!sharded()) return dir_ + "/model.safetensors";
  const std::vector<RangePart> &parts = snap_.weightParts;
  return dir_ + "/" + parts.front().file + (parts.size() > 1 ? " ... " + parts.back().file : "") + " (" +
         std::to_string(parts.size()) + (parts.size() == 1 ? " weight range file)" : " weight range files)");
}

}  // namespace tlc::train
