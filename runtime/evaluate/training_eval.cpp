#include "runtime/evaluate/training_eval.h"

#include <cstdio>
#include <filesystem>

#include "runtime/data/manifest.h"
#include "runtime/data/tokenizer.h"
#include "runtime/evaluate/scorer.h"

namespace fs = std::filesystem;

namespace tlc::evaluate {
namespace {

std::string tokenizerOf(const std::string &dataDir) {
  std::string path = data::tokenizerPathOf(dataDir);
  if (path.empty())
    throw train::ConfigError("key 'eval_every': " + dataDir + " has no tokenizer: prepare the data with tlrun prepare, or "
                             "set eval_every=0");
  return path;
}

class TrainingEvaluation : public train::PeriodicWork {
 public:
  explicit TrainingEvaluation(const train::WorkContext &c)
      : c_(c.config), scorer_(c.artifact, c.device, c.model), tokPath_(tokenizerOf(c.dataDir)),
        tok_(data::Tokenizer::load(tokPath_)), tasks_(TaskSet::load({c.config.eval_tasks}, c.config.eval_limit)) {
    scorer_.checkTokenizer(tok_, tokPath_);
  }

  int64_t every() const override { return c_.eval_every; }

  nlohmann::json run(int64_t step, const std::vector<std::vector<float>> &params) override {
    scorer_.setParams(params);
    nlohmann::json fields = nlohmann::json::object();
    std::string line = "eval " + std::to_string(step) + ":";
    for (const TaskScore &t : scoreTasks(scorer_, tok_, tasks_, c_.eval_limit)) {
      fields["eval_" + t.name + "_acc"] = t.acc;
      char buf[128];
      std::snprintf(buf, sizeof buf, " %s acc %.4f", t.name.c_str(), t.acc);
      line += buf;
      if (t.hasAccNorm) {
        fields["eval_" + t.name + "_acc_norm"] = t.accNorm;
        std::snprintf(buf, sizeof buf, " acc_norm %.4f", t.accNorm);
        line += buf;
      }
      line += " (" + std::to_string(t.examples) + ")";
    }
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
    return fields;
  }

 private:
  const train::Config &c_;
  Scorer scorer_;
  std::string tokPath_;
  data::Tokenizer tok_;
  TaskSet tasks_;
};

}  // namespace

std::unique_ptr<train::PeriodicWork> makeTrainingEvaluation(const train::WorkContext &context) {
  if (context.config.eval_every <= 0) return nullptr;
  return std::make_unique<TrainingEvaluation>(context);
}

}  // namespace tlc::evaluate
