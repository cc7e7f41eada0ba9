// What `tlrun train` settles before its loop: the resolved configuration
// (defaults or the checkpoint's, then --config, --set, --steps, --data, and
// what may not change on resume), one tokenizer across the data sources,
// the artifact's flat layout, fresh weights, and the run directory's lock.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/artifact.h"
#include "runtime/train/checkpoint.h"
#include "runtime/train/config.h"
#include "runtime/train/trainer.h"

namespace tlc::train {

// A failure of the run (exit status 1), named by its message.
struct TrainError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Throws ConfigError naming the key (exit status 2).
Config resolveConfig(const TrainOptions &o, const nlohmann::json *checkpointConfig);
// Sources must share one tokenizer: the ids mean the same in each.
void checkOneTokenizer(const std::vector<DataSource> &sources);
// The artifact's flat layout and micro-batch shape.
Layout layoutOf(const artifact::Artifact &a, const std::string &path);
// The layout a run trains: the artifact's, with the configuration's
// micro_batch (0: the compiled one; at most the compiled one, else
// ConfigError naming the key).
Layout trainingLayout(const artifact::Artifact &a, const std::string &path, int64_t microBatch);
// Fresh weights from the artifact's init specs, seeded per tensor.
std::vector<float> initialWeights(const artifact::Tensor &p, size_t index, uint64_t seed);

// One writer per run directory (flock on RUN_DIR/.lock).
class RunLock {
 public:
  explicit RunLock(const std::string &runDir);
  ~RunLock();
  RunLock(const RunLock &) = delete;
  RunLock &operator=(const RunLock &) = delete;

 private:
  int fd_ = -1;
};

}  // namespace tlc::train
