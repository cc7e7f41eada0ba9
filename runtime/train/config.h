// The trainer's configuration: one table of keys (name, type, default, range,
// help) drives defaults, --config files and --set overrides (both read by the
// shared command-line layer, cli/cli.h), validation, config.json and
// `tlrun train --help`.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace tlc::train {

// Every bad key or value: the message names the key (and the file when there is one).
struct ConfigError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// One source of a data mixture (`--data NAME=DIR:WEIGHT`, or a [data.NAME]
// table with `dir` and `weight`); a plain `--data DIR` is one unnamed source.
struct DataSource {
  std::string name, dir;
  double weight = 1;
  bool operator==(const DataSource &o) const { return name == o.name && dir == o.dir && weight == o.weight; }
};

struct Config {
  // Defaults: the TinyLlama recipe (DESIGN.md); see kKeys for the rest.
  int64_t steps = 1430512;
  int64_t batch_tokens = 2097152;  // 1024 sequences x 2048 tokens
  int64_t micro_batch = 0;         // B of a micro-batch; 0: the artifact's
  double lr = 4e-4, min_lr = 4e-5;
  int64_t warmup_steps = 2000;
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1, grad_clip = 1.0;
  int64_t seed = 1337;
  bool shuffle = true;
  int64_t log_every = 10, val_every = 1000, val_batches = 20;
  int64_t checkpoint_every = 1000, keep_checkpoints = 3;
  // "full": rank 0 writes model.safetensors (gathered); "sharded": each rank
  // writes its owned range of the master weights. Empty until the job's
  // world size is known (resolveCheckpointWeights).
  std::string checkpoint_weights;
  // Beyond the fixed interface keys.
  int64_t nonfinite_limit = 5;  // consecutive non-finite steps that stop the run
  bool decay_norms = false;     // weight decay on 1-D tensors (norms) too
  bool final_checkpoint = true; // false: benchmarks skip writing the last state
  // Data parallelism (docs/distributed.md): ZeRO stage, collective timeout,
  // gradient bucket size.
  int64_t zero = 2;
  double comm_timeout_s = 300;
  double bucket_mb = 25;
  bool overlap = true;  // zero=2/3 on MPI: buckets reduced on a communication thread during backward
  // The learning-rate schedule after warmup: cosine to min_lr at `steps`;
  // wsd (warmup-stable-decay) holds lr and decays to min_lr over the last
  // decay_steps (0: a fifth of the run) with decay_shape; constant holds lr.
  std::string schedule = "cosine";
  int64_t decay_steps = 0;
  std::string decay_shape = "linear";  // linear, cosine or sqrt (1 - sqrt of progress)
  // Samples and downstream evaluation during training (0: off).
  int64_t sample_every = 0, sample_tokens = 32, sample_count = 2;
  std::string sample_prompt;
  double sample_temperature = 0.8;
  int64_t eval_every = 0, eval_limit = 0;
  std::string eval_tasks;  // NAME=FILE.jsonl,... (tlrun evaluate's --tasks)
  // The training data: empty until --data or [data.NAME] sets it.
  std::vector<DataSource> data;

  nlohmann::json toJson() const;
};

struct KeyInfo {
  const char *name;
  const char *type;  // "int", "float", "bool" or "string"
  const char *range; // human-readable
  const char *help;
};
const std::vector<KeyInfo> &configKeys();

// Sets one key from a JSON value (from a file or a parsed --set value);
// `where` prefixes errors ("config.toml" or "--set").
void setKey(Config &c, const std::string &key, const nlohmann::json &value, const std::string &where);
// The --set occurrences ("a=1,b=2" each), parsed by cli::parseSetList: a key
// given twice, in one occurrence or across them, is an error.
void applySet(Config &c, const std::vector<std::string> &items);
// A config file read by cli::loadConfigFile (JSON, or TOML with line numbers
// in messages); keys at the top level or under [train].
void applyFile(Config &c, const std::string &path);
// Ranges of every key and their relations (min_lr <= lr, ...).
void validate(const Config &c);
// checkpoint_weights when unset: sharded where the parameters are sharded at
// rest (zero=3 on several ranks), so that no rank gathers the model; else full.
void resolveCheckpointWeights(Config &c, int world);
Config fromJson(const nlohmann::json &j, const std::string &where);

// The help text listing every key, its default and range.
std::string keysHelp();

// The learning rate of 0-indexed step s: linear warmup, then the schedule
// (cosine: llm.c's and nanoGPT's).
double learningRate(const Config &c, int64_t s);
// The steps of wsd's decay (decay_steps, or a fifth of the run).
int64_t decaySteps(const Config &c);

// `--data` values: one DIR (an unnamed source) or NAME=DIR:WEIGHT items
// (WEIGHT > 0, optional: 1; names unique, [A-Za-z0-9_-]). Throws ConfigError
// naming the item.
std::vector<DataSource> parseDataOptions(const std::vector<std::string> &items);
// "name=dir:weight ..." for messages and the progress header.
std::string describeData(const std::vector<DataSource> &sources);

}  // namespace tlc::train
