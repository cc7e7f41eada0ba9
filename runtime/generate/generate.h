// tlrun generate: text from a trained model with its compiled decode step.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "runtime/data/tokenizer.h"
#include "runtime/generate/sampler.h"

namespace tlc::generate {

struct GenerateOptions {
  std::string source;     // RUN_DIR, a checkpoint directory or a .safetensors file
  std::string prompt;
  std::string model;      // the .tlx; default: the run's (run.json)
  std::string tokenizer;  // tokenizer.model; default: the run's data directory's
  std::string device = "cpu";
  int64_t maxTokens = 128;
  SamplingOptions sampling;
  bool json = false;      // one JSON object on stdout instead of streamed text
};

// Where a run's pieces are: the weights, the artifact, the tokenizer.
struct RunFiles {
  std::string weights, model, tokenizer;
  std::string checkpoint;  // the checkpoint the weights are read through (either form); "" for a bare file
};
// Resolves `o.source` (a run directory: its latest checkpoint; a checkpoint
// directory; a weights file) and the artifact and tokenizer it was trained
// with (RUN_DIR/run.json, the data directory's manifest), --model and
// --tokenizer taking precedence. Throws std::runtime_error naming what is
// missing and how to give it.
RunFiles resolveRunFiles(const GenerateOptions &o);

struct Generation {
  std::vector<int> promptIds;  // BOS, then the encoded prompt
  std::vector<int> ids;        // generated, without the prompt
  std::string text;            // decoded generated ids
  std::string stop;            // "eos", "max_tokens" or "context"
  double seconds = 0;          // for the whole loop, prompt included
};

// The text `ids` add after `prefix` (both decoded together, so a piece's
// leading space is kept); empty while the bytes decoded so far do not extend
// the prefix's text (an incomplete UTF-8 sequence from byte pieces).
std::string textAfter(const data::Tokenizer &tok, const std::vector<int> &prefix, const std::string &prefixText,
                      const std::vector<int> &ids);

// Runs generation; returns the exit status (0 done, 1 failure, 2 bad usage).
int runGenerate(const GenerateOptions &o);

}  // namespace tlc::generate
