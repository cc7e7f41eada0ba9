#include "runtime/generate/generate.h"

#include "cli/cli.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "formats/artifact.h"
#include "runtime/data/manifest.h"
#include "runtime/data/sources.h"
#include "runtime/data/tokenizer.h"
#include "runtime/exec/device.h"
#include "runtime/generate/decoder.h"
#include "cli/inputs.h"
#include "formats/safetensors.h"
#include "runtime/train/checkpoint_ref.h"
#include "runtime/train/checkpoint_weights.h"
#include "runtime/train/run_info.h"

namespace tlc::generate {
namespace fs = std::filesystem;
namespace {

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string shapeString(const std::vector<int64_t> &s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

}  // namespace

// The text `ids` add after `prefix` (both decoded together, so a piece's
// leading space is kept); empty while the bytes decoded so far do not extend
// the prefix's text (an incomplete UTF-8 sequence from byte pieces).
std::string textAfter(const data::Tokenizer &tok, const std::vector<int> &prefix, const std::string &prefixText,
                      const std::vector<int> &ids) {
  std::vector<int> all = prefix;
  all.insert(all.end(), ids.begin(), ids.end());
  std::string text = tok.decode(all);
  return text.compare(0, prefixText.size(), prefixText) == 0 ? text.substr(prefixText.size()) : tok.decode(ids);
}


RunFiles resolveRunFiles(const GenerateOptions &o) {
  RunFiles f;
  std::string runDir;
  const std::string &s = o.source;
  // A checkpoint (any reference form), or a weights file; a checkpoint's
  // weights are verified against its state.json either way.
  std::string &checkpoint = f.checkpoint;
  if (std::optional<train::CheckpointRef> ref = train::findCheckpointRef(s)) {
    checkpoint = ref->dir;
  } else if (fs::is_regular_file(s)) {
    f.weights = s;
    checkpoint = train::checkpointOfWeightsFile(s);
  } else {
    train::resolveCheckpointRef(s, "a .safetensors weights file");  // throws, saying what it is
  }
  if (!checkpoint.empty()) {
    std::string weights = train::verifyCheckpointWeights(checkpoint, "tlrun generate");
    if (f.weights.empty()) f.weights = weights;
    runDir = train::runDirOfCheckpoint(checkpoint);
  }
  nlohmann::json run;
  if (!runDir.empty() && fs::is_regular_file(runDir + "/run.json")) {
    try {
      run = nlohmann::json::parse(std::ifstream(runDir + "/run.json"));
    } catch (const std::exception &e) {
      throw std::runtime_error(runDir + "/run.json: " + e.what());
    }
  }
  f.model = o.model;
  if (f.model.empty()) {
    if (!run.contains("model") || !run["model"].is_string())
      throw std::runtime_error(s + ": no run.json naming the compiled model (runs of an older tlrun train, or a bare "
                           "weights file): give it with --model MODEL.tlx");
    f.model = run["model"].get<std::string>();
  }
  // "given a text file, expected a .tlx artifact" rather than a bad magic.
  inputs::expectKind(f.model, inputs::FileKind::Artifact, o.model.empty() ? runDir + "/run.json names" : "--model");
  f.tokenizer = o.tokenizer;
  if (f.tokenizer.empty()) {
    if (!run.contains("data") || !run["data"].is_string())
      throw std::runtime_error(s + ": no run.json naming the data directory: give the tokenizer with --tokenizer "
                           "tokenizer.model");
    std::string dataDir = run["data"].get<std::string>();
    std::string file = fs::is_regular_file(dataDir + "/manifest.json") ? data::readManifest(dataDir).tokenizerFile
                                                                        : "tokenizer.model";
    f.tokenizer = dataDir + "/" + file;
    if (!fs::is_regular_file(f.tokenizer))
      throw std::runtime_error(f.tokenizer + ": the run's data directory has no tokenizer (prepare the data with "
                               "tlrun prepare, or give --tokenizer)");
  }
  return f;
}

namespace {

Generation generate(const GenerateOptions &o, const RunFiles &files, Device &device) {
  artifact::Artifact a = artifact::read(files.model);
  data::Tokenizer tok = data::Tokenizer::load(files.tokenizer);
  Decoder decoder(a, device, files.model);
  if (tok.vocabSize() > decoder.vocab())
    throw std::runtime_error(files.tokenizer + ": the tokenizer has " + std::to_string(tok.vocabSize()) +
                             " pieces but the model's vocabulary is " + std::to_string(decoder.vocab()));
  if (!files.checkpoint.empty()) {  // either form of checkpoint weights
    train::CheckpointWeights w = train::CheckpointWeights::open(files.checkpoint);
    for (size_t i = 0; i < a.params.size(); ++i) decoder.setParam(i, w.values(a.params[i].name, a.params[i].shape).data());
  } else {
    safetensors::File w = safetensors::File::open(files.weights);
    for (size_t i = 0; i < a.params.size(); ++i) {
      const safetensors::TensorInfo &t = w.get(a.params[i].name);
      if (t.shape != a.params[i].shape)
        throw safetensors::Error(w.path() + ": tensor '" + t.name + "' has shape " + shapeString(t.shape) +
                                 " but the model needs " + shapeString(a.params[i].shape));
      std::vector<double> values = w.toDoubles(t);
      decoder.setParam(i, std::vector<float>(values.begin(), values.end()).data());
    }
  }

  Generation g;
  if (tok.bosId() >= 0) g.promptIds.push_back(tok.bosId());  // as tlrun prepare starts every document
  for (int id : tok.encode(o.prompt)) g.promptIds.push_back(id);
  if (g.promptIds.empty()) throw UsageError("--prompt is empty and the tokenizer has no BOS to start from");
  if (static_cast<int64_t>(g.promptIds.size()) > decoder.context())
    throw UsageError("the prompt is " + std::to_string(g.promptIds.size()) + " tokens (BOS included) but the "
                     "model's context is " + std::to_string(decoder.context()) + " tokens: shorten it");
  Sampler sampler(o.sampling);
  std::string promptText = tok.decode(g.promptIds), printed;
  if (!o.json) {
    std::fputs(o.prompt.c_str(), stdout);
    std::fflush(stdout);
  }
  auto start = std::chrono::steady_clock::now();
  int64_t position = 0;
  const std::vector<float> *logits = nullptr;
  for (int id : g.promptIds) logits = &decoder.step(id, position++);
  g.stop = "max_tokens";
  while (static_cast<int64_t>(g.ids.size()) < o.maxTokens) {
    for (float x : *logits)
      if (!std::isfinite(x))
        throw std::runtime_error("the model's logits at position " + std::to_string(position - 1) +
                                 " are not finite (a diverged checkpoint?)");
    int32_t next = sampler.next(*logits, tok.vocabSize());
    if (next == tok.eosId()) {
      g.stop = "eos";
      break;
    }
    g.ids.push_back(next);
    if (!o.json) {  // stream what the new token completes
      std::string text = textAfter(tok, g.promptIds, promptText, g.ids);
      if (text.size() > printed.size() && text.compare(0, printed.size(), printed) == 0) {
        std::fputs(text.c_str() + printed.size(), stdout);
        std::fflush(stdout);
        printed = text;
      }
    }
    if (static_cast<int64_t>(g.ids.size()) == o.maxTokens) break;
    if (position == decoder.context()) {
      g.stop = "context";
      break;
    }
    logits = &decoder.step(next, position++);
  }
  g.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  g.text = textAfter(tok, g.promptIds, promptText, g.ids);
  if (!o.json) {
    if (g.text.compare(0, printed.size(), printed) == 0) std::fputs(g.text.c_str() + printed.size(), stdout);
    std::fputs("\n", stdout);
  }
  return g;
}

}  // namespace

int runGenerate(const GenerateOptions &o) {
  try {
    if (o.maxTokens < 0) throw UsageError("--max-tokens must be >= 0");
    Sampler check(o.sampling);  // options refused before anything is loaded
    int64_t bad = data::findInvalidUtf8(o.prompt);
    if (bad >= 0) {
      char byte[8];
      std::snprintf(byte, sizeof byte, "0x%02x", static_cast<unsigned char>(o.prompt[bad]));
      throw UsageError("--prompt is not valid UTF-8: byte " + std::string(byte) + " at byte offset " +
                       std::to_string(bad));
    }
    RunFiles files = resolveRunFiles(o);
    std::unique_ptr<Device> device = o.device == "cuda" ? makeCudaDevice() : makeCpuDevice();
    Generation g = generate(o, files, *device);
    size_t processed = g.promptIds.size() + g.ids.size();
    const char *why = g.stop == "eos" ? "end of sequence" : g.stop == "context" ? "context full" : "max tokens";
    if (o.json) {
      nlohmann::json j = {{"prompt", o.prompt},          {"prompt_ids", g.promptIds}, {"ids", g.ids},
                          {"text", g.text},              {"stop", g.stop},            {"seconds", g.seconds},
                          {"device", device->describe()}, {"weights", files.weights}, {"model", files.model}};
      std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      // The streamed text ends wherever the model stopped: end its line first.
      if (g.text.empty() || g.text.back() != '\n') std::printf("\n");
      std::fflush(stdout);
      std::fprintf(stderr, "%zu tokens generated (%s), %zu decode steps in %.2f s (%.1f tokens/s) on %s\n",
                   g.ids.size(), why, processed > 0 ? processed - 1 : 0, g.seconds,
                   g.seconds > 0 ? static_cast<double>(processed) / g.seconds : 0.0, device->describe().c_str());
    }
    return 0;
  } catch (const UsageError &e) {
    std::fprintf(stderr, "tlrun generate: %s\n", e.what());
    return 2;
  } catch (const std::invalid_argument &e) {
    std::fprintf(stderr, "tlrun generate: %s\n", e.what());
    return 2;
  } catch (const std::exception &e) {
    std::fprintf(stderr, "tlrun generate: %s\n", e.what());
    return 1;
  }
}

}  // namespace tlc::generate
