// Initial weights for `tlrun train --init-from`: a Hugging Face Llama
// directory (what tlrun export writes, or a downloaded LlamaForCausalLM:
// model.safetensors, or model.safetensors.index.json and its shards;
// config.json checked against the model when present), one .safetensors
// file, under Hugging Face names, in f32, bf16, f16 or f64, or a tlc
// checkpoint directory (its weights in either form, checkpoint_weights.h).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "formats/artifact.h"
#include "formats/safetensors.h"
#include "runtime/train/checkpoint_weights.h"

namespace tlc::hf {

class InitWeights {
 public:
  // Checks everything before any value is used: every parameter of the
  // artifact present with its shape, a float dtype and finite values; no
  // tensor left over (rotary inv_freq buffers aside); config.json agreeing.
  // A tied checkpoint (tie_word_embeddings, no lm_head.weight) gives lm_head
  // the embedding. Throws hf::Error or safetensors::Error naming the file and
  // the tensor or key.
  static InitWeights open(const std::string &path, const artifact::Artifact &a);

  // The parameter's values as f32 (exact for f32, bf16 and f16 files).
  std::vector<float> values(const artifact::Tensor &p) const;
  // What was read, for the log line: the files.
  std::string describe() const;

 private:
  static InitWeights fromCheckpoint(const std::string &dir, const artifact::Artifact &a);
  std::shared_ptr<const train::CheckpointWeights> checkpoint_;  // set: a checkpoint's weights
  std::vector<safetensors::File> files_;
  struct Source {
    size_t file;
    std::string tensor;  // its name in that file
  };
  std::map<std::string, Source> params_;
};

}  // namespace tlc::hf
