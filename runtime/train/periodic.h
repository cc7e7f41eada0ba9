// Work the training loop does every N steps with the current weights, on
// rank 0: samples (runtime/generate) and downstream evaluation
// (runtime/evaluate). The trainer knows only this interface; tools/tlrun.cpp
// hands it the factories, so train/ does not depend on those folders.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/artifact.h"
#include "runtime/exec/device.h"
#include "runtime/train/config.h"

namespace tlc::train {

class PeriodicWork {
 public:
  virtual ~PeriodicWork() = default;
  virtual int64_t every() const = 0;
  // params[i]: parameter i of the artifact, f32. Prints what it has to say
  // and returns fields for the step's metrics.jsonl entry.
  virtual nlohmann::json run(int64_t step, const std::vector<std::vector<float>> &params) = 0;
};

struct WorkContext {
  const Config &config;
  const artifact::Artifact &artifact;
  std::string model, dataDir, runDir;  // dataDir: the first source's (its tokenizer)
  Device &device;
  int64_t startStep = 0;  // the step the run starts from (a resumed run's checkpoint)
};

// nullptr when the configuration does not ask for it; throws (ConfigError or
// std::runtime_error, naming the key or file) when it cannot be done, before
// the run directory is touched.
using WorkFactory = std::function<std::unique_ptr<PeriodicWork>(const WorkContext &)>;

}  // namespace tlc::train
