#include "runtime/generate/training_samples.h"

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "runtime/data/manifest.h"
#include "runtime/data/tokenizer.h"
#include "runtime/generate/decoder.h"
#include "runtime/generate/generate.h"
#include "runtime/generate/sampler.h"

namespace fs = std::filesystem;

namespace tlc::generate {
namespace {

std::string tokenizerOf(const std::string &dataDir) {
  std::string path = data::tokenizerPathOf(dataDir);
  if (path.empty())
    throw train::ConfigError("key 'sample_every': " + dataDir + " has no tokenizer: prepare the data with tlrun prepare, or "
                             "set sample_every=0");
  return path;
}

class TrainingSamples : public train::PeriodicWork {
 public:
  explicit TrainingSamples(const train::WorkContext &c)
      : c_(c.config), runDir_(c.runDir), startStep_(c.startStep), decoder_(c.artifact, c.device, c.model),
        tok_(data::Tokenizer::load(tokenizerOf(c.dataDir))) {
    if (tok_.bosId() >= 0) prompt_.push_back(tok_.bosId());
    for (int id : tok_.encode(c_.sample_prompt)) prompt_.push_back(id);
    if (prompt_.empty()) throw train::ConfigError("key 'sample_prompt' is empty and the tokenizer has no BOS");
    if (static_cast<int64_t>(prompt_.size()) >= decoder_.context())
      throw train::ConfigError("key 'sample_prompt' is " + std::to_string(prompt_.size()) +
                               " tokens (BOS included), the model's context " + std::to_string(decoder_.context()));
    promptText_ = tok_.decode(prompt_);
  }

  int64_t every() const override { return c_.sample_every; }

  nlohmann::json run(int64_t step, const std::vector<std::vector<float>> &params) override {
    for (size_t i = 0; i < params.size(); ++i) decoder_.setParam(i, params[i].data());
    openLog();
    for (int64_t k = 0; k < c_.sample_count; ++k) {
      SamplingOptions so;
      so.temperature = c_.sample_temperature;
      so.topP = c_.sample_temperature > 0 ? 0.9 : 1.0;
      so.seed = static_cast<uint64_t>(c_.seed) * 1000003u + static_cast<uint64_t>(step) * 64u + static_cast<uint64_t>(k);
      Sampler sampler(so);
      std::vector<int> ids;
      std::string stop = "max_tokens";
      int64_t position = 0;
      const std::vector<float> *logits = nullptr;
      for (int id : prompt_) logits = &decoder_.step(id, position++);
      while (static_cast<int64_t>(ids.size()) < c_.sample_tokens) {
        bool finite = true;
        for (float x : *logits) finite &= std::isfinite(x);
        if (!finite) {
          stop = "nonfinite";
          break;
        }
        int32_t next = sampler.next(*logits, tok_.vocabSize());
        if (next == tok_.eosId()) {
          stop = "eos";
          break;
        }
        ids.push_back(next);
        if (position == decoder_.context()) {
          stop = "context";
          break;
        }
        if (static_cast<int64_t>(ids.size()) < c_.sample_tokens) logits = &decoder_.step(next, position++);
      }
      std::string text = textAfter(tok_, prompt_, promptText_, ids);
      std::printf("sample %lld.%lld: %s%s\n", static_cast<long long>(step), static_cast<long long>(k),
                  c_.sample_prompt.c_str(), text.c_str());
      nlohmann::json line = {{"step", step}, {"sample", k}, {"prompt", c_.sample_prompt}, {"text", text},
                             {"ids", ids}, {"stop", stop}};
      std::string out = line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
      if (std::fwrite(out.data(), 1, out.size(), log_) != out.size() || std::fflush(log_) != 0)
        throw std::runtime_error(runDir_ + "/samples.jsonl: cannot append: " + std::strerror(errno));
    }
    std::fflush(stdout);
    return nlohmann::json::object();
  }

  ~TrainingSamples() override {
    if (log_) std::fclose(log_);
  }

 private:
  // On first use (the run directory exists by then): a resumed run keeps
  // the samples up to its checkpoint's step and drops the abandoned tail.
  void openLog() {
    if (log_) return;
    std::string path = runDir_ + "/samples.jsonl", kept;
    std::ifstream in(path);
    for (std::string line; std::getline(in, line);) {
      nlohmann::json e = nlohmann::json::parse(line, nullptr, false);
      if (e.is_object() && e.value("step", int64_t{0}) <= startStep_) kept += line + "\n";
    }
    log_ = std::fopen(path.c_str(), "wb");
    if (!log_ || std::fwrite(kept.data(), 1, kept.size(), log_) != kept.size())
      throw std::runtime_error(path + ": cannot write: " + std::strerror(errno));
  }

  const train::Config &c_;
  std::string runDir_;
  int64_t startStep_;
  Decoder decoder_;
  data::Tokenizer tok_;
  std::vector<int> prompt_;
  std::string promptText_;
  FILE *log_ = nullptr;
};

}  // namespace

std::unique_ptr<train::PeriodicWork> makeTrainingSamples(const train::WorkContext &context) {
  if (context.config.sample_every <= 0) return nullptr;
  return std::make_unique<TrainingSamples>(context);
}

}  // namespace tlc::generate
