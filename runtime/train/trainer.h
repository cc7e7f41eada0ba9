// `tlrun train`: the training loop over an TrainingState — schedule, gradient
// accumulation, clipping, validation, non-finite guards, checkpoints with
// exact resume, signals, progress line and metrics (docs/training.md).
#pragma once

#include <string>
#include <vector>

#include "runtime/train/periodic.h"

namespace tlc::train {

struct TrainOptions {
  std::string model, runDir, configFile, device = "cpu", initWeights;
  std::vector<std::string> data;  // --data: DIR, or NAME=DIR:WEIGHT items
  bool resumeOptimizer = false;   // --resume-optimizer: --init-from's moments too
  std::vector<std::string> sets;  // --set lists, applied in order
  int64_t steps = 0;              // --steps (0: not given)
  bool resume = false;
  std::string resumeFrom;         // empty: RUN_DIR's latest
};

// Runs (or resumes) a training; returns the exit status: 0 done, 1 failure,
// 2 bad configuration, 128+signal when stopped by SIGINT/SIGTERM (after
// writing a checkpoint). Messages go to stderr, progress to stdout.
// `work`: factories of samples and evaluations (tools/tlrun.cpp's).
int runTrain(const TrainOptions &o, const std::vector<WorkFactory> &work = {});

}  // namespace tlc::train
