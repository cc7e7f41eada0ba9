#include "runtime/train/run_setup.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

namespace fs = std::filesystem;

namespace tlc::train {

RunLock::RunLock(const std::string &runDir) {
  std::string path = runDir + "/.lock";
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT, 0644);
  if (fd_ < 0) throw TrainError(runDir + ": the run directory is not writable (" + std::strerror(errno) + ")");
  if (flock(fd_, LOCK_EX | LOCK_NB) != 0)
    throw TrainError(runDir + ": another tlrun train is using this run directory");
}

RunLock::~RunLock() { ::close(fd_); }

Layout layoutOf(const artifact::Artifact &a, const std::string &path) {
  const artifact::EntryPoint *step = a.entry(artifact::kTrainStep);
  if (!step) throw TrainError(path + ": the artifact has no training step ('" + std::string(artifact::kTrainStep) + "')");
  Layout l;
  for (const artifact::Tensor &p : a.params) l.tensors.push_back({p.name, p.shape, p.offset, p.numel()});
  l.flatElements = a.flatElements;
  for (const artifact::Tensor &in : step->inputs)
    if (in.name == "tokens" && in.shape.size() == 2) l.batch = in.shape[0], l.seq = in.shape[1];
  if (l.batch == 0) throw TrainError(path + ": the training step has no [B, T] input 'tokens'");
  return l;
}

Layout trainingLayout(const artifact::Artifact &a, const std::string &path, int64_t microBatch) {
  Layout layout = layoutOf(a, path);
  if (microBatch == 0 || microBatch == layout.batch) return layout;
  // Any micro-batch up to the compiled one runs on the same kernels (their
  // row counts are run-time arguments).
  int64_t compiled = a.entry(artifact::kTrainStep)->batch;
  if (compiled == 0)
    throw ConfigError("key 'micro_batch' (" + std::to_string(microBatch) + "): " + path +
                      " runs only its compiled micro-batch of " + std::to_string(layout.batch));
  if (microBatch > compiled)
    throw ConfigError("key 'micro_batch' (" + std::to_string(microBatch) + ") exceeds the " + std::to_string(compiled) +
                      " sequences " + path + " was compiled for: recompile with tlc emit --set micro_batch=N");
  layout.batch = microBatch;
  return layout;
}

// Our own Box-Muller, so the values do not depend on the C++ library.
std::vector<float> initialWeights(const artifact::Tensor &p, size_t index, uint64_t seed) {
  std::vector<float> w(static_cast<size_t>(p.numel()));
  std::string kind = p.init.is_object() ? p.init.value("kind", "") : "";
  if (kind == "ones") {
    std::fill(w.begin(), w.end(), 1.0f);
  } else if (kind == "zeros") {
    std::fill(w.begin(), w.end(), 0.0f);
  } else if (kind == "normal") {
    double stdev = p.init.value("std", 0.02);
    std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(index), 0x1417u};
    std::mt19937_64 rng(seq);
    auto uniform = [&] { return (static_cast<double>(rng() >> 11) + 0.5) * 0x1.0p-53; };
    for (size_t i = 0; i < w.size(); i += 2) {
      double r = std::sqrt(-2 * std::log(uniform())), t = 2 * M_PI * uniform();
      w[i] = static_cast<float>(stdev * r * std::cos(t));
      if (i + 1 < w.size()) w[i + 1] = static_cast<float>(stdev * r * std::sin(t));
    }
  } else {
    throw TrainError("parameter '" + p.name + "' has an unknown init " + p.init.dump());
  }
  return w;
}


Config resolveConfig(const TrainOptions &o, const nlohmann::json *checkpointConfig) {
  Config c = checkpointConfig ? fromJson(*checkpointConfig, "the checkpoint's config") : Config();
  if (!o.configFile.empty()) applyFile(c, o.configFile);
  applySet(c, o.sets);
  if (o.steps > 0) c.steps = o.steps;
  if (!o.data.empty()) c.data = parseDataOptions(o.data);  // the command line over the file and checkpoint
  if (c.data.empty())
    throw ConfigError("no training data: give --data DIR, or --data NAME=DIR:WEIGHT per source (or [data.NAME] "
                      "tables in --config)");
  validate(c);
  if (checkpointConfig) {
    Config before = fromJson(*checkpointConfig, "the checkpoint's config");
    if (before.seed != c.seed || before.shuffle != c.shuffle)
      throw ConfigError(std::string("key '") + (before.seed != c.seed ? "seed" : "shuffle") +
                        "' cannot change on resume: the data order depends on it");
    // The position is a function of the mixture: its names and weights stay
    // (directories may move). Checkpoints of older runs record no data.
    auto mix = [](const std::vector<DataSource> &d) {
      std::string s;
      for (const DataSource &x : d) s += x.name + ":" + std::to_string(x.weight) + " ";
      return s;
    };
    bool wasMixture = before.data.size() > 1 || (before.data.size() == 1 && !before.data[0].name.empty());
    bool isMixture = c.data.size() > 1 || !c.data[0].name.empty();
    if ((before.data.empty() && isMixture) || (!before.data.empty() && (wasMixture || isMixture) &&
                                               mix(before.data) != mix(c.data)))
      throw ConfigError("the data mixture cannot change on resume (the data position depends on it): the "
                        "checkpoint's is '" + (before.data.empty() ? std::string("one directory") : describeData(before.data)) +
                        "', given '" + describeData(c.data) + "'. To train on other data, start a new phase: "
                        "--init-from CHECKPOINT [--resume-optimizer] (docs/training.md, \"Phases\")");
  }
  return c;
}


void checkOneTokenizer(const std::vector<DataSource> &sources) {
  std::string first, firstDigest;
  for (const DataSource &d : sources) {
    std::string manifest = d.dir + "/manifest.json";
    nlohmann::json m = nlohmann::json::parse(std::ifstream(manifest), nullptr, false);
    if (!m.is_object()) continue;  // no manifest (or Dataset names a bad one)
    std::string name = m.contains("tokenizer") && m["tokenizer"].is_object()
                           ? m["tokenizer"].value("file", "tokenizer.model")
                           : "tokenizer.model";
    std::string path = d.dir + "/" + name;
    if (!fs::is_regular_file(path)) continue;
    std::string digest = std::to_string(fileFnv1a64(path));
    if (first.empty()) first = path, firstDigest = digest;
    else if (digest != firstDigest)
      throw ConfigError("--data: the sources were tokenized with different tokenizers (" + first + " and " + path +
                        "): prepare them with one tokenizer (tlrun prepare --tokenizer)");
  }
}

}  // namespace tlc::train
