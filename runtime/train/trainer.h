// `tlrun train`: the training loop over an TrainingState — schedule, gradient
// accumulation, clipping, validation, non-finite guards, checkpoints with
// exact resume, signals, progress line and metrics (docs/training.md).
#pragma once

#include <string>
#include <vector>

namespace tlc::train {

struct TrainOptions {
  std::string model, dataDir, runDir, configFile, device = "cpu", initWeights;
  std::vector<std::string> sets;  // --set lists, applied in order
  int64_t steps = 0;              // --steps (0: not given)
  bool resume = false;
  std::string resumeFrom;         // empty: RUN_DIR's latest
};

// Runs (or resumes) a training; returns the exit status: 0 done, 1 failure,
// 2 bad configuration, 128+signal when stopped by SIGINT/SIGTERM (after
// writing a checkpoint). Messages go to stderr, progress to stdout.
int runTrain(const TrainOptions &o);

}  // namespace tlc::train
