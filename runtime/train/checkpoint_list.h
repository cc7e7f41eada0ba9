// `tlrun checkpoints RUN_DIR [--verify]`: a run's checkpoints with step,
// save time, loss, size and whether each is intact, so a user sees what they
// can resume from (docs/training.md, "Checkpoint references").
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tlc::train {

struct CheckpointEntry {
  int64_t step = 0;
  std::string dir;
  std::string savedAt;  // UTC, ISO 8601: state.json's saved_at, else its modification time
  double loss = std::numeric_limits<double>::quiet_NaN();  // the step's training loss
  uint64_t bytes = 0;   // every file of the checkpoint directory
  std::vector<std::string> weightFiles;  // model.safetensors, or the weight range files (sharded)
  bool shardedWeights = false;
  bool latest = false;  // named by checkpoints/latest
  bool verified = false;  // every checksum read and matched (--verify)
  std::vector<std::string> problems;  // empty: intact
};

struct CheckpointListing {
  std::string runDir;
  std::vector<CheckpointEntry> entries;  // by step
  std::string latestProblem;  // checkpoints/latest missing or naming no listed checkpoint
  int temporaries = 0;        // .tmp-* left by a killed save (removed by the next run)
};

// Lists RUN_DIR/checkpoints (RUN_DIR may also be its checkpoints/ folder):
// presence and sizes of every file always; with `verify` also the FNV-1a 64
// checksums (reads everything). Throws CheckpointError when there is no
// checkpoints/ folder.
CheckpointListing listCheckpoints(const std::string &runDir, bool verify);

// The terminal table, and the --json document.
std::string formatListing(const CheckpointListing &l, bool verify);
nlohmann::json listingJson(const CheckpointListing &l);

// True when every listed checkpoint is intact and `latest` is sound.
bool listingIntact(const CheckpointListing &l);

}  // namespace tlc::train
