// `tlrun export CHECKPOINT --hf OUT_DIR`: a checkpoint's weights as
// a Hugging Face Llama directory (config.json, model.safetensors,
// generation_config.json, tokenizer.model and tokenizer_config.json when the
// run's data has a tokenizer), what LlamaForCausalLM.from_pretrained and
// LlamaTokenizer load. See docs/training.md, "Hugging Face interop".
#pragma once

#include <string>

namespace tlc::hf {

struct ExportOptions {
  std::string source;   // a checkpoint reference (train/checkpoint_ref.h)
  std::string outDir;   // --hf
  std::string model;    // --model: the artifact, instead of RUN_DIR/run.json's
  std::string dataDir;  // --data: the tokenizer's directory, instead of run.json's
  std::string dtype = "f32";  // f32, bf16 or f16
  bool force = false;   // replace files already in outDir
};

// Returns the exit status: 0 done, 1 failure (messages on stderr).
int runExport(const ExportOptions &o);

}  // namespace tlc::hf
