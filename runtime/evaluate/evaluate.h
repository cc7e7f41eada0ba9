// tlrun evaluate: zero-shot multiple-choice tasks and perplexity of a
// checkpoint, a Hugging Face directory or a weights file (docs/evaluation.md).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tlc::evaluate {

struct EvaluateOptions {
  std::string source;                  // RUN_DIR, a checkpoint reference, an HF directory, a .safetensors
  std::vector<std::string> tasks;      // NAME=FILE.jsonl,... per occurrence
  std::vector<std::string> texts;      // files for perplexity
  int64_t limit = 0;                   // examples per task; 0: all
  std::string model, tokenizer;        // default: the run's (run.json)
  std::string device = "cpu";
  bool json = false;                   // JSON on stdout instead of the table
  std::string output;                  // also write the JSON here
  bool logSamples = false;             // per-example scores and tokens in the JSON
};

// Where the pieces of an evaluation are.
struct Sources {
  std::string weights;    // a .safetensors file or a Hugging Face directory
  std::string model;      // the .tlx
  std::string tokenizer;  // tokenizer.model
};

// Resolves `o.source`: a checkpoint reference (its model.safetensors,
// verified; the artifact and tokenizer from its run's run.json), a Hugging
// Face directory (config.json / model.safetensors; tokenizer.model in it)
// or a weights file; --model and --tokenizer take precedence. Throws
// std::runtime_error saying what is missing and how to give it.
Sources resolveSources(const EvaluateOptions &o);

// Runs the evaluation; returns the exit status (0 done, 1 failure, 2 bad usage).
int runEvaluate(const EvaluateOptions &o);

}  // namespace tlc::evaluate
