// Writing a checkpoint of a data-parallel run (any zero level): each rank
// its own files, rank 0 the manifest last (checkpoint.h has the formats).
#pragma once

#include <string>

#include "runtime/train/checkpoint.h"
#include "runtime/train/config.h"

namespace tlc {
class TrainingState;
}

namespace tlc::train {

class DataParallel;

// Every rank writes its owned range of the moments, and with sharded
// weights (checkpoint_weights=sharded) its owned range of the master
// weights; with full weights rank 0 writes them all, gathered chunk by
// chunk. After every rank's files are on disk rank 0 publishes
// RUN_DIR/checkpoints/STEP with state.json last and returns its path (on
// every rank). A rank that fails makes every rank throw CheckpointError with
// its message; `latest` then still names the previous checkpoint. `tag`
// names the temporary directory (the same on every rank).
std::string saveCheckpoint(const std::string &runDir, const TrainerState &s, const Layout &layout, const Config &c,
                           DataParallel &dp, TrainingState &engine, long tag);

}  // namespace tlc::train
