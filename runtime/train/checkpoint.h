// Checkpoints: RUN_DIR/checkpoints/<step>/ holding
//   model.safetensors      the f32 master weights under their Hugging Face
//                          names (loadable on its own; checkpoint_weights=full),
//   master-<r>-of-<N>.safetensors
//                          or instead (checkpoint_weights=sharded) the master
//                          weights as flat ranges, one file per rank ("master"
//                          over elements [begin, end) of the flat buffer), so
//                          that no rank gathers the model,
//   optimizer.safetensors  AdamW's moments as flat ranges ("exp_avg",
//                          "exp_avg_sq" over elements [begin, end) of the
//                          flat buffers; state.json lists the range files, so
//                          ranks can each write theirs and a different number
//                          of ranks can re-cut them on resume),
//   state.json             step, data position, RNG, resolved config, the flat
//                          layout (tensor offsets) and its identity, the range
//                          files ("optimizer", and "weights" when sharded) and
//                          the size and FNV-1a 64 checksum of every other file.
//                          It also records the last step's training loss
//                          ("loss") and when it was saved ("saved_at", UTC),
//                          for tlrun checkpoints.
// A checkpoint is written into checkpoints/.tmp-<step>-<pid>/ (every file
// fsync'd, then the directory), renamed into place, and only then named by
// checkpoints/latest (a one-line file, replaced atomically); older ones are
// pruned after that. A crash at any moment leaves `latest` naming a complete
// checkpoint.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "formats/hash.h"
#include "runtime/exec/range.h"
#include "runtime/train/data.h"

namespace tlc::train {

// Format versions: 1 keeps the weights in model.safetensors; 2 adds sharded
// weights (state.json's "weights" lists their range files). A full checkpoint
// is still written as version 1, so that an older tlrun reads it; readers
// accept every version up to kCheckpointFormatVersion.
constexpr int kCheckpointFormatVersion = 2;
constexpr int kFullWeightsFormatVersion = 1;

struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct TensorSlot {
  std::string name;
  std::vector<int64_t> shape;
  int64_t offset = 0, numel = 0;  // elements of the flat buffers
};

// The artifact's flat layout and micro-batch shape: what makes a checkpoint
// resumable with an artifact.
struct Layout {
  std::vector<TensorSlot> tensors;
  int64_t flatElements = 0, batch = 0, seq = 0;
  nlohmann::json toJson() const;
  static Layout fromJson(const nlohmann::json &j);
  std::string identity() const;  // hex FNV-1a 64 of the canonical JSON
};

struct TrainerState {
  int64_t step = 0;        // optimizer steps done (logged steps count from 1)
  int64_t adamStep = 0;    // updates applied (skipped steps excluded): bias correction
  int64_t skippedSteps = 0, nonfiniteInARow = 0;
  Position data;           // the next micro-batch
  nlohmann::json config;   // resolved configuration
  double loss = std::numeric_limits<double>::quiet_NaN();  // the last step's training loss
};

// One range file of a checkpoint: the moments (optimizer-*) or, sharded,
// the master weights (master-*) of flat elements [begin, end).
struct RangePart {
  std::string file;
  int64_t begin = 0, end = 0;
};
using OptimizerPart = RangePart;

// The range file names of rank `rank` of `world`: optimizer-<r>-of-<N>.safetensors
// (one rank: optimizer.safetensors) and master-<r>-of-<N>.safetensors.
std::string optimizerFileName(int rank, int world);
std::string weightFileName(int rank, int world);

// A checkpoint in host memory: every master weight, and the moments of one
// flat range (everything on one rank; a rank's own range when reading).
// Read without data (readCheckpoint's withData false), only the state, the
// layout and the range files are filled: the trainer then streams the data.
// `weightParts` empty: the weights are model.safetensors (writeCheckpoint
// writes that form unless it is given the parts).
struct Snapshot {
  TrainerState state;
  Layout layout;
  std::vector<OptimizerPart> parts;  // flat order
  std::vector<RangePart> weightParts;  // sharded weights, flat order
  std::vector<float> master;       // layout.flatElements
  int64_t rangeBegin = 0;          // optimizer range of m and v
  std::vector<float> m, v;
};

// Saving and loading go through host buffers of at most this many elements
// (64 MiB of f32), whatever the model's size.
constexpr int64_t kCheckpointChunkElements = int64_t{1} << 24;
// Supplies flat elements [begin, end) into `into`; receives them from `values`.
using FlatFill = std::function<void(int64_t begin, int64_t end, float *into)>;
using FlatVisit = std::function<void(int64_t begin, int64_t end, const float *values)>;
// The model file's data in file order: pieces [begin, end) of at most
// `chunk` elements, each inside one tensor. Every rank of a job walks the
// same pieces (the trainer gathers each from its owner).
void forEachModelChunk(const Layout &l, int64_t chunk, const std::function<void(int64_t begin, int64_t end)> &visit);

// FNV-1a 64 of a whole file (and its size in `bytes`); throws CheckpointError
// naming the file when it cannot be read. Checksums in state.json, export's
// verification and the ranks' artifact check all use it.
uint64_t fileFnv1a64(const std::string &path, uint64_t *bytes = nullptr);

// Writes and publishes the checkpoint of snap.state.step, then keeps the
// newest `keep` (0: all) of those at or before this step. Returns its
// directory. On failure (disk full, unwritable) nothing existing is changed
// and the temporary directory is removed; throws CheckpointError naming the file.
std::string writeCheckpoint(const std::string &runDir, const Snapshot &snap, int64_t keep);

// The same in pieces, for data-parallel ranks sharing the run directory:
// rank 0 creates the temporary directory, every rank writes its optimizer
// range file (and rank 0 the full model, or every rank its weight range
// file) into it, and after a barrier rank 0 publishes it: state.json last
// (checksums of every file), the rename, latest, pruning. `tag` makes the
// temporary name unique (rank 0's pid).
std::string checkpointTempDir(const std::string &runDir, int64_t step, long tag);
void createCheckpointTemp(const std::string &tmp);
void writeModelFile(const std::string &tmp, const Layout &l, const float *master);
void writeOptimizerFile(const std::string &tmp, const OptimizerPart &part, const float *m, const float *v);
// The same streamed: `fill` is called in forEachModelChunk's order (model;
// for every chunk even after a write error, which is thrown at the end, so
// that collectives inside `fill` complete on every rank) or in flat order
// over the part's range, m then v (optimizer).
void writeModelFile(const std::string &tmp, const Layout &l, const FlatFill &fill,
                    int64_t chunk = kCheckpointChunkElements);
void writeOptimizerFile(const std::string &tmp, const OptimizerPart &part, const FlatFill &m, const FlatFill &v,
                        int64_t chunk = kCheckpointChunkElements);
// Sharded weights: `part`'s range of the master weights, `fill` called in
// flat order (no collectives: each rank writes what it owns).
void writeWeightFile(const std::string &tmp, const RangePart &part, const FlatFill &fill,
                     int64_t chunk = kCheckpointChunkElements);
// `weightParts` empty: the weights are model.safetensors.
std::string publishCheckpoint(const std::string &runDir, const std::string &tmp, const TrainerState &s, const Layout &l,
                              const std::vector<OptimizerPart> &parts, int64_t keep,
                              const std::vector<RangePart> &weightParts = {});
void discardCheckpointTemp(const std::string &tmp);  // after a failure: best effort

// Checkpoint references (run directory, latest, RUN_DIR:STEP) are resolved
// by checkpoint_ref.h.

// Reads and verifies (checksums, sizes, layout identity against `expected`)
// a checkpoint directory; throws CheckpointError naming the file. The moments
// are read for `want` only (empty: the whole flat buffer), re-cut from the
// range files whatever ranks wrote them (shard::reshard). `verify` false skips
// the checksums but not the sizes (data-parallel ranks other than 0: rank 0
// checks them).
Snapshot readCheckpoint(const std::string &dir, const Layout &expected, int64_t wantBegin = 0, int64_t wantEnd = -1,
                        bool verify = true, bool withData = true);
// The data of a checkpoint readCheckpoint has verified, in chunks read with
// pread (bounded resident memory): the master weights over the flat
// elements `want` ({0, s.layout.flatElements}: all), tensor by tensor in file
// order (from model.safetensors, or re-cut from the weight range files: the
// same pieces either way), and the moments over [wantBegin, wantEnd) from
// whichever range files hold them. A zero=3 rank reads only its shard.
void readMasterChunks(const std::string &dir, const Snapshot &s, Range want, const FlatVisit &visit,
                      int64_t chunk = kCheckpointChunkElements);
// One tensor's master weights, likewise.
void readMasterTensor(const std::string &dir, const Snapshot &s, const TensorSlot &t, const FlatVisit &visit,
                      int64_t chunk = kCheckpointChunkElements);
void readMomentChunks(const std::string &dir, const Snapshot &s, int64_t wantBegin, int64_t wantEnd,
                      const FlatVisit &m, const FlatVisit &v, int64_t chunk = kCheckpointChunkElements);

// What the weights' readers need (checkpoint_weights.h): the state, the
// checkpoint's own layout and its weight files (model.safetensors or the
// range files, headers checked), without the optimizer's files, whose
// damage they only warn about. Checksums are verifyCheckpointWeights'.
Snapshot readCheckpointWeights(const std::string &dir);

// "[2, 3]": a shape in the readers' messages.
std::string shapeText(const std::vector<int64_t> &shape);

// The resolved config recorded in a checkpoint (before reading the rest).
nlohmann::json readCheckpointConfig(const std::string &dir);

// Removes checkpoints/.tmp-* left by a killed process (call with the run locked).
void removeStaleTemporaries(const std::string &runDir);

}  // namespace tlc::train
