#include "runtime/evaluate/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/inputs.h"
#include "formats/artifact.h"
#include "runtime/data/manifest.h"
#include "runtime/data/tokenizer.h"
#include "runtime/evaluate/perplexity.h"
#include "runtime/evaluate/scorer.h"
#include "runtime/evaluate/text.h"
#include "runtime/exec/device.h"
#include "runtime/hf/init_weights.h"
#include "runtime/train/checkpoint_ref.h"
#include "runtime/train/run_info.h"

namespace tlc::evaluate {
namespace fs = std::filesystem;
namespace {

bool isFile(const std::string &p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

bool isHfDirectory(const std::string &p) {
  std::error_code ec;
  return fs::is_directory(p, ec) && (isFile(p + "/config.json") || isFile(p + "/model.safetensors") ||
                                     isFile(p + "/model.safetensors.index.json"));
}

// "0.2500 ± 0.0433", or "-" for a metric the task does not report.
std::string metric(bool has, double value, double stderr_) {
  if (!has) return "-";
  char s[64];
  if (std::isnan(stderr_)) std::snprintf(s, sizeof s, "%.4f", value);
  else std::snprintf(s, sizeof s, "%.4f ± %.4f", value, stderr_);
  return s;
}

// `s` padded with spaces to `width` characters ("±" is one).
std::string pad(const std::string &s, int64_t width) {
  return s + std::string(std::max<int64_t>(0, width - codePoints(s)), ' ');
}

void printTable(const std::vector<TaskScore> &tasks, const std::vector<TextScore> &texts) {
  if (!tasks.empty()) {
    std::printf("%-16s %9s  %s  %s\n", "task", "examples", pad("acc", 17).c_str(), "acc_norm");
    for (const TaskScore &t : tasks)
      std::printf("%-16s %9lld  %s  %s\n", t.name.c_str(), static_cast<long long>(t.examples),
                  pad(metric(true, t.acc, t.accStderr), 17).c_str(),
                  metric(t.hasAccNorm, t.accNorm, t.accNormStderr).c_str());
  }
  if (!texts.empty()) {
    if (!tasks.empty()) std::printf("\n");
    std::printf("%-32s %9s %12s %12s %12s %14s\n", "text", "tokens", "perplexity", "word_ppl", "byte_ppl",
                "bits_per_byte");
    auto number = [](double x) {  // an untrained model's word perplexity runs to 1e9
      char out[32];
      std::snprintf(out, sizeof out, std::abs(x) < 1e6 ? "%.4f" : "%.4e", x);
      return std::string(out);
    };
    for (const TextScore &s : texts)
      std::printf("%-32s %9lld %12s %12s %12s %14s\n", s.file.c_str(), static_cast<long long>(s.tokens),
                  number(s.tokenPerplexity()).c_str(), number(s.wordPerplexity()).c_str(),
                  number(s.bytePerplexity()).c_str(), number(s.bitsPerByte()).c_str());
  }
}

nlohmann::json taskJson(const TaskScore &t, bool samples) {
  nlohmann::json j = {{"task", t.name},           {"file", t.file},
                      {"examples", t.examples},   {"acc", t.acc},
                      {"acc_stderr", t.accStderr}, {"acc_norm", nullptr},
                      {"acc_norm_stderr", nullptr}};
  if (t.hasAccNorm) j["acc_norm"] = t.accNorm, j["acc_norm_stderr"] = t.accNormStderr;
  if (std::isnan(t.accStderr)) j["acc_stderr"] = nullptr, j["acc_norm_stderr"] = nullptr;
  if (!samples) return j;
  nlohmann::json list = nlohmann::json::array();
  for (const ExampleScore &e : t.samples) {
    nlohmann::json choices = nlohmann::json::array();
    for (const ChoiceScore &c : e.choices)
      choices.push_back({{"loglik", c.loglik},
                         {"greedy", c.greedy},
                         {"context_tokens", c.tokens.context},
                         {"continuation_tokens", c.tokens.continuation}});
    list.push_back({{"line", e.line}, {"gold", e.gold}, {"pred", e.pred}, {"pred_norm", e.predNorm}, {"choices", choices}});
  }
  j["samples"] = list;
  return j;
}

nlohmann::json textJson(const TextScore &s) {
  return {{"file", s.file},
          {"tokens", s.tokens},
          {"words", s.words},
          {"bytes", s.bytes},
          {"loglik", s.loglik},
          {"token_perplexity", s.tokenPerplexity()},
          {"word_perplexity", s.wordPerplexity()},
          {"byte_perplexity", s.bytePerplexity()},
          {"bits_per_byte", s.bitsPerByte()}};
}

}  // namespace

Sources resolveSources(const EvaluateOptions &o) {
  Sources f;
  const std::string &s = o.source;
  std::string runDir;
  if (std::optional<train::CheckpointRef> ref = train::findCheckpointRef(s)) {
    f.weights = train::verifyCheckpointWeights(ref->dir, "tlrun evaluate");
    runDir = train::runDirOfCheckpoint(ref->dir);
  } else if (isHfDirectory(s)) {
    f.weights = s;
    if (o.model.empty())
      throw cli::UsageError(s + ": a Hugging Face directory names no compiled model: give --model MODEL.tlx");
    if (o.tokenizer.empty()) {
      f.tokenizer = s + "/tokenizer.model";
      if (!isFile(f.tokenizer))
        throw std::runtime_error(s + ": holds no tokenizer.model (SentencePiece): give --tokenizer");
    }
  } else if (isFile(s) && inputs::detect(s) == inputs::FileKind::Safetensors) {
    f.weights = s;
    // A checkpoint's model.safetensors named as a file is verified as the
    // checkpoint would be, and its run supplies the model and tokenizer.
    std::string checkpoint = train::checkpointOfWeightsFile(s);
    if (!checkpoint.empty()) {
      train::verifyCheckpointWeights(checkpoint, "tlrun evaluate");
      runDir = train::runDirOfCheckpoint(checkpoint);
    }
  } else {
    train::resolveCheckpointRef(s, "a Hugging Face directory (config.json, model.safetensors) or a .safetensors "
                                   "weights file");  // throws, saying what it is
  }
  train::RunInfo run;
  if (!runDir.empty() && (o.model.empty() || o.tokenizer.empty())) run = train::readRunInfo(runDir);
  f.model = !o.model.empty() ? o.model : run.model;
  if (f.model.empty())
    throw std::runtime_error(s + ": no run.json naming the compiled model (not in a run directory): give --model "
                             "MODEL.tlx");
  inputs::expectKind(f.model, inputs::FileKind::Artifact, o.model.empty() ? runDir + "/run.json names" : "--model");
  if (!o.tokenizer.empty()) f.tokenizer = o.tokenizer;
  if (f.tokenizer.empty()) {
    if (run.dataDir.empty())
      throw std::runtime_error(s + ": no run.json naming the data directory: give --tokenizer tokenizer.model");
    std::string file = isFile(run.dataDir + "/manifest.json") ? data::readManifest(run.dataDir).tokenizerFile
                                                               : "tokenizer.model";
    f.tokenizer = run.dataDir + "/" + file;
    if (!isFile(f.tokenizer))
      throw std::runtime_error(f.tokenizer + ": the run's data directory has no tokenizer (give --tokenizer)");
  }
  return f;
}

int runEvaluate(const EvaluateOptions &o) {
  // Options, task files and outputs are checked before the model loads.
  if (o.tasks.empty() && o.texts.empty())
    throw cli::UsageError("nothing to evaluate: give --tasks NAME=FILE.jsonl,... and/or --text FILE");
  if (!o.output.empty()) inputs::expectWritable(o.output, "--output");
  TaskSet tasks;
  try {
    tasks = TaskSet::load(o.tasks, o.limit);
  } catch (const TaskSpecError &e) {  // a bad --tasks item, before any file is read
    throw cli::UsageError(e.what());
  }
  std::vector<std::string> texts;
  for (const std::string &t : o.texts) texts.push_back(readTextFile(t));
  Sources files = resolveSources(o);
  artifact::Artifact a = artifact::read(files.model);
  requireForwardLogits(a, files.model);  // before the weights are read
  data::Tokenizer tok = data::Tokenizer::load(files.tokenizer);
  std::unique_ptr<Device> device = o.device == "cuda" ? makeCudaDevice() : makeCpuDevice();
  Scorer scorer(a, *device, files.model);
  scorer.checkTokenizer(tok, files.tokenizer);
  hf::InitWeights weights = hf::InitWeights::open(files.weights, a);
  for (size_t i = 0; i < a.params.size(); ++i) scorer.setParam(i, weights.values(a.params[i]).data());

  auto start = std::chrono::steady_clock::now();
  // A line per task and text on stderr: a large model's evaluation takes a while.
  auto since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  std::vector<TaskScore> taskScores;
  for (const Task &t : tasks.tasks) {
    auto taskStart = std::chrono::steady_clock::now();
    taskScores.push_back(scoreTask(scorer, tok, t, o.limit));
    size_t requests = 0;
    for (const ExampleScore &e : taskScores.back().samples) requests += e.choices.size();
    std::fprintf(stderr, "%s: %lld examples, %zu requests in %.2f s\n", t.name.c_str(),
                 static_cast<long long>(taskScores.back().examples), requests, since(taskStart));
  }
  std::vector<TextScore> textScores;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto textStart = std::chrono::steady_clock::now();
    textScores.push_back(scoreText(scorer, tok, o.texts[i], texts[i]));
    std::fprintf(stderr, "%s: %lld tokens in %.2f s\n", o.texts[i].c_str(),
                 static_cast<long long>(textScores.back().tokens), since(textStart));
  }
  double seconds = since(start);

  nlohmann::json j = {{"source", o.source},       {"weights", files.weights},
                      {"model", files.model},     {"tokenizer", files.tokenizer},
                      {"device", device->describe()}, {"limit", o.limit > 0 ? nlohmann::json(o.limit) : nullptr},
                      {"seconds", seconds},       {"tasks", nlohmann::json::array()},
                      {"perplexity", nlohmann::json::array()}};
  for (const TaskScore &t : taskScores) j["tasks"].push_back(taskJson(t, o.logSamples));
  for (const TextScore &s : textScores) j["perplexity"].push_back(textJson(s));
  std::string text = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  if (!o.output.empty())
    train::writeTextAtomic(o.output, j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
  if (o.json) {
    std::printf("%s\n", text.c_str());
  } else {
    printTable(taskScores, textScores);
    std::fflush(stdout);
    std::fprintf(stderr, "evaluated %s in %.2f s on %s (model %s, context %lld, batch %lld)\n", files.weights.c_str(),
                 seconds, device->describe().c_str(), files.model.c_str(), static_cast<long long>(scorer.context()),
                 static_cast<long long>(scorer.batch()));
  }
  return 0;
}

}  // namespace tlc::evaluate
