#include "runtime/train/checkpoint_save.h"

#include <algorithm>
#include <exception>
#include <vector>

#include "runtime/comm/communicator.h"
#include "runtime/train/parallel.h"
#include "runtime/train/training_state.h"

namespace tlc::train {

std::string saveCheckpoint(const std::string &runDir, const TrainerState &s, const Layout &layout, const Config &c,
                           DataParallel &dp, TrainingState &engine, long tag) {
  const shard::Layout &l = dp.layout();
  Range opt = engine.optimizerRange();
  bool root = dp.rank() == 0;
  std::string tmp = checkpointTempDir(runDir, s.step, tag);
  std::string error;
  auto agree = [&](const char *what) {
    std::vector<double> failed = dp.allGather({error.empty() ? 0.0 : 1.0});
    std::string ranks;
    for (size_t r = 0; r < failed.size(); ++r)
      if (failed[r] != 0) ranks += (ranks.empty() ? "" : ", ") + std::to_string(r);
    if (ranks.empty()) return;
    if (root) discardCheckpointTemp(tmp);
    throw CheckpointError(error.empty() ? std::string(what) + " failed on rank " + ranks : error);
  };
  if (root) try {
      createCheckpointTemp(tmp);
    } catch (const std::exception &e) {
      error = e.what();
    }
  agree("creating the checkpoint directory");

  // Streamed in chunks (bounded host memory): the master weights of each
  // chunk come from the ranks that own them (every rank walks the chunks),
  // each rank's moments from its own device buffers.
  bool local = dp.world() == 1 || opt.size() == l.elements;
  auto gatherMaster = [&](int64_t b, int64_t e, float *into) {
    if (local) return engine.download(FlatBuffer::Master, {b, e}, into);
    for (int r = 0; r < dp.world(); ++r) {
      Range own = l.ownedBy(r);
      int64_t pb = std::max(b, own.begin), pe = std::min(e, own.end);
      if (pb >= pe) continue;
      if (r == dp.rank()) engine.download(FlatBuffer::Master, {pb, pe}, into + (pb - b));
      dp.comm().host().broadcast(into + (pb - b), static_cast<size_t>(pe - pb), comm::DType::F32, r);
    }
  };
  auto partOf = [&](int r) {
    return OptimizerPart{optimizerFileName(r, dp.world()), l.ownedBy(r).begin, l.ownedBy(r).end};
  };
  bool sharded = c.checkpoint_weights == "sharded";
  auto weightPartOf = [&](int r) {
    return RangePart{weightFileName(r, dp.world()), l.ownedBy(r).begin, l.ownedBy(r).end};
  };
  auto download = [&](FlatBuffer which) {
    return [&engine, which](int64_t b, int64_t e, float *into) { engine.download(which, {b, e}, into); };
  };
  try {
    if (sharded) {  // each rank's own master weights: no collective
      writeWeightFile(tmp, weightPartOf(dp.rank()), download(FlatBuffer::Master));
    } else if (root) {
      writeModelFile(tmp, layout, gatherMaster);
    } else if (!local) {
      std::vector<float> buf;
      forEachModelChunk(layout, kCheckpointChunkElements, [&](int64_t b, int64_t e) {
        buf.resize(static_cast<size_t>(e - b));
        gatherMaster(b, e, buf.data());
      });
    }
    writeOptimizerFile(tmp, partOf(dp.rank()), download(FlatBuffer::M), download(FlatBuffer::V));
  } catch (const std::exception &e) {
    error = "saving checkpoint " + runDir + "/checkpoints/" + std::to_string(s.step) + " failed: " + e.what();
  }
  agree("writing the checkpoint");  // the barrier before the manifest

  std::string dir = runDir + "/checkpoints/" + std::to_string(s.step);
  if (root) try {
      std::vector<OptimizerPart> parts;
      std::vector<RangePart> weightParts;
      for (int r = 0; r < dp.world(); ++r) {
        parts.push_back(partOf(r));
        if (sharded) weightParts.push_back(weightPartOf(r));
      }
      dir = publishCheckpoint(runDir, tmp, s, layout, parts, c.keep_checkpoints, weightParts);
    } catch (const std::exception &e) {
      error = e.what();
    }
  agree("publishing the checkpoint");
  return dir;
}

}  // namespace tlc::train
