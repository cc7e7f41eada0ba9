// Samples during training (sample_every, sample_prompt, sample_tokens,
// sample_count, sample_temperature): every N steps rank 0 continues the
// prompt with the current weights through the artifact's decode step and
// writes each sample to the log and to RUN_DIR/samples.jsonl
// ({"step", "sample", "prompt", "text", "ids", "stop"}).
#pragma once

#include "runtime/train/periodic.h"

namespace tlc::generate {

// nullptr when sample_every is 0; throws when the artifact has no decode
// step or the data has no tokenizer.
std::unique_ptr<train::PeriodicWork> makeTrainingSamples(const train::WorkContext &context);

}  // namespace tlc::generate
