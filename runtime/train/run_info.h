// RUN_DIR/run.json: what a run trains — the artifact (its path, its model
// configuration, the tl.model dictionary, and parameter dtype) and the data
// directory — so that tools given only a run directory or a checkpoint
// (tlrun export, tlrun generate) find the model's dimensions and the
// tokenizer without the user naming them again. Written by tlrun train on
// every start (a resume may use another artifact of the same layout).
#pragma once

#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

namespace tlc::train {

struct RunInfoError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct RunInfo {
  std::string model;          // the .tlx, absolute
  std::string dataDir;        // absolute
  nlohmann::json modelConfig; // the artifact's tl.model dictionary
  std::string paramDType;     // "f32" or "bf16": the compute dtype of the parameters
};

// Writes `text` to `path` through a temporary file renamed into place (a
// run directory's run.json and config.json); throws RunInfoError naming `path`.
void writeTextAtomic(const std::string &path, const std::string &text);
// Writes RUN_DIR/run.json atomically (temporary file, rename).
void writeRunInfo(const std::string &runDir, const RunInfo &info);
// Reads RUN_DIR/run.json; throws RunInfoError naming the file and the key.
RunInfo readRunInfo(const std::string &runDir);
// The run directory a checkpoint belongs to (RUN_DIR/checkpoints/<step>),
// when it holds a run.json; empty otherwise.
std::string runDirOfCheckpoint(const std::string &checkpointDir);

}  // namespace tlc::train
