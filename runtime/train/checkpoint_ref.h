// Checkpoint references as users type them, and the checks every reader of
// a checkpoint makes. One resolver serves tlrun train --resume/--init-from,
// generate, export and eval (docs/training.md, "Checkpoint references"):
//
//   RUN_DIR                    its newest checkpoint (checkpoints/latest)
//   RUN_DIR/checkpoints        the same
//   RUN_DIR/checkpoints/latest the file: the step it names
//   RUN_DIR/checkpoints/<step> that checkpoint (any directory with state.json)
//   RUN_DIR:STEP               RUN_DIR/checkpoints/STEP (STEP may be "latest")
//
// A reader verifies size and FNV-1a 64 checksum of every file it reads and
// checks the ones it skips by presence and size (cheap), warning one line
// per damaged file: the command still works, but the user learns that the
// checkpoint cannot be resumed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tlc::train {

struct CheckpointRef {
  std::string dir;     // the checkpoint directory (holds state.json)
  std::string runDir;  // its run directory when dir is RUN_DIR/checkpoints/<step>; "" otherwise
  int64_t step = -1;   // from the directory's name, or state.json's "step"
};

// The checkpoint `ref` names, in any of the forms above; throws
// CheckpointError saying what `ref` is and listing the accepted forms, after
// `alsoAccepted` when the command takes other things too ("a .safetensors
// weights file").
CheckpointRef resolveCheckpointRef(const std::string &ref, const std::string &alsoAccepted = "");

// The same for commands that also take other things (a weights file, a
// Hugging Face directory): nullopt when `ref` is none of the forms above;
// throws CheckpointError when it is one of them but broken (`latest` naming
// a missing step, RUN_DIR:STEP with no such checkpoint).
std::optional<CheckpointRef> findCheckpointRef(const std::string &ref);

// What the accepted forms are, for error messages and help texts.
extern const char *const kCheckpointRefForms;

// One file a checkpoint's state.json lists.
struct CheckpointFile {
  std::string name;
  uint64_t bytes = 0;
  std::string fnv1a64;  // hex
};

// state.json, parsed and its format checked; throws CheckpointError naming it.
struct CheckpointManifest {
  std::string dir;
  nlohmann::json state;
  std::vector<CheckpointFile> files;
};
CheckpointManifest readCheckpointManifest(const std::string &dir);

// What is wrong with one listed file ("" when nothing): missing, another
// size, and when `checksum` another FNV-1a 64 (reading the whole file).
std::string checkCheckpointFile(const std::string &dir, const CheckpointFile &f, bool checksum);

// Verifies a reader's files: those named in `reading` in full (throws
// CheckpointError on the first damaged one, or one not listed), the others
// by presence and size, printing to stderr for each damaged one
//   warning: DIR/FILE: <problem> (<command> does not read it, but the checkpoint cannot be resumed)
// Returns the warnings printed.
std::vector<std::string> verifyCheckpointFiles(const CheckpointManifest &m, const std::vector<std::string> &reading,
                                               const std::string &command);

// The files holding a checkpoint's weights: model.safetensors, or the
// range files of sharded weights (state.json's "weights"); throws
// CheckpointError naming state.json when that list is malformed.
std::vector<std::string> checkpointWeightFiles(const CheckpointManifest &m);

// What the weights' readers (generate, eval, evaluate, export, --init-from)
// do: verify the weight files in full and the rest by size. Returns what
// hf::InitWeights::open reads: DIR/model.safetensors, or DIR itself when
// the weights are sharded (read through checkpoint_weights.h).
std::string verifyCheckpointWeights(const std::string &dir, const std::string &command);
// The checkpoint a weights file belongs to: its directory when `file` is a
// model.safetensors beside a state.json, "" otherwise.
std::string checkpointOfWeightsFile(const std::string &file);

}  // namespace tlc::train
