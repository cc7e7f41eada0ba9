// tlrun eval: run a compiled training step on weights and token data.
#include "runtime/eval/command.h"

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <CLI/CLI.hpp>

#include "formats/artifact.h"
#include "runtime/exec/device.h"
#include "runtime/train/checkpoint_ref.h"
#include "runtime/train/checkpoint_weights.h"
#include "runtime/train/training_state.h"
#include "cli/inputs.h"
#include "formats/safetensors.h"
#include "formats/tokens.h"

namespace tlc {
namespace {

std::string shapeString(const std::vector<int64_t> &s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Parameter values (f32; the engine rounds them to the compute dtype) from
// any float tensor of the file.
std::vector<float> paramValues(const safetensors::File &f, const artifact::Tensor &p) {
  const safetensors::TensorInfo &t = f.get(p.name);
  if (t.shape != p.shape)
    throw safetensors::Error(f.path() + ": tensor '" + p.name + "' has shape " + shapeString(t.shape) +
                             " but the model needs " + shapeString(p.shape));
  std::vector<double> values = f.toDoubles(t);
  return std::vector<float>(values.begin(), values.end());
}

struct EvalOptions {
  std::string model, weights, tokensPath, deviceName = "cpu", gradsPath;
  bool json = false;
};

int evalCommand(const EvalOptions &options) {
  const std::string &model = options.model, &weights = options.weights,
                    &tokensPath = options.tokensPath, &deviceName = options.deviceName,
                    &gradsPath = options.gradsPath;
  const bool json = options.json;
  // Every input recognised and every output writable before any work.
  inputs::expectKind(model, inputs::FileKind::Artifact, "MODEL");
  artifact::Artifact a = artifact::read(model);
  // --weights: a weights file, or a checkpoint (any reference form) whose
  // weight files (either form) are verified against its state.json.
  std::string checkpoint;
  if (std::optional<train::CheckpointRef> ref = train::findCheckpointRef(weights)) {
    checkpoint = ref->dir;
  } else {
    if (!std::filesystem::is_regular_file(weights))
      train::resolveCheckpointRef(weights, "a .safetensors weights file");  // throws, saying what it is
    inputs::expectKind(weights, inputs::FileKind::Safetensors, "--weights");
    checkpoint = train::checkpointOfWeightsFile(weights);
  }
  if (!checkpoint.empty()) train::verifyCheckpointWeights(checkpoint, "tlrun eval");
  inputs::expectKind(tokensPath, inputs::FileKind::TokenShard, "--tokens");
  if (!gradsPath.empty()) inputs::expectWritable(gradsPath, "--dump-grads");
  const artifact::EntryPoint *step = a.entry(artifact::kTrainStep);
  if (!step || step->inputs.empty() || step->inputs[0].shape.size() != 2)
    throw artifact::Error(model + ": no training step with inputs 'tokens' and 'targets' of shape [B, T]");
  int64_t batch = step->inputs[0].shape[0], seq = step->inputs[0].shape[1];
  std::vector<std::vector<float>> params;
  if (!checkpoint.empty()) {
    train::CheckpointWeights w = train::CheckpointWeights::open(checkpoint);
    for (const auto &p : a.params) params.push_back(w.values(p.name, p.shape));
  } else {
    safetensors::File w = safetensors::File::open(weights);
    std::vector<inputs::ParamSpec> specs;
    for (const auto &p : a.params) specs.push_back({p.name, p.shape, artifact::dtypeName(p.dtype)});
    inputs::checkWeights(w, specs);
    for (const auto &p : a.params) params.push_back(paramValues(w, p));
  }
  std::vector<uint16_t> tokens = tokens::readShard(tokensPath);
  size_t steps = tokens::requireMicroBatches(tokensPath, tokens.size(), batch, seq);
  inputs::checkTokenIds(tokensPath, tokens, steps, batch, seq, a.config.value("vocab", int64_t{0}));

  std::unique_ptr<Device> device = deviceName == "cuda" ? makeCudaDevice() : makeCpuDevice();
  TrainingState engine(a, *device);
  for (size_t i = 0; i < params.size(); ++i) engine.setParam(i, params[i].data());

  // The training step accumulates every micro-batch's gradients on the device.
  double lossSum = 0;
  engine.zeroGrads();
  for (size_t s = 0; s < steps; ++s) {
    tokens::MicroBatch mb = tokens::microBatch(tokens, s, batch, seq);
    lossSum += engine.trainMicroBatch(mb.inputs.data(), mb.targets.data());
  }
  double loss = lossSum / static_cast<double>(steps);

  if (!gradsPath.empty()) {
    std::vector<std::vector<float>> storage;
    std::vector<safetensors::TensorRef> refs;
    for (size_t i = 0; i < a.params.size(); ++i) {
      std::vector<float> mean(a.params[i].numel());
      engine.download(FlatBuffer::Grads, engine.rangeOf(i), mean.data());
      for (float &g : mean) g = static_cast<float>(g / static_cast<double>(steps));
      storage.push_back(std::move(mean));
      refs.push_back({a.params[i].name, safetensors::DType::F32, a.params[i].shape, storage.back().data()});
    }
    if (refs.empty()) throw artifact::Error(model + ": --dump-grads needs a model with parameters");
    safetensors::write(gradsPath, refs, {{"content", "mean gradients"}});
  }
  if (json) {
    nlohmann::json j = {{"loss", loss}, {"micro_batches", steps}, {"device", device->describe()}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("loss: %.9g (mean of %zu micro-batches, %s)\n", loss, steps, device->describe().c_str());
  }
  return 0;
}

}  // namespace

void addEvalCommand(CLI::App &tlrun) {
  auto options = std::make_shared<EvalOptions>();
  CLI::App *eval = tlrun.add_subcommand(
      "eval", "Run the compiled training step on every full micro-batch of an llm.c token shard;\n"
              "print the mean loss, optionally write the mean gradients.");
  eval->add_option("MODEL", options->model, "the .tlx artifact to run (from tlc compile)")
      ->required()
      ->type_name("");
  eval->add_option("--weights", options->weights, "parameters by their HF names (any float dtype), or a checkpoint: RUN_DIR, "
                   "RUN_DIR:STEP, a checkpoint directory or checkpoints/latest")
      ->required()
      ->type_name("W.safetensors|CHECKPOINT");
  eval->add_option("--tokens", options->tokensPath, "an llm.c token shard")
      ->required()
      ->type_name("T.bin");
  eval->add_option("--device", options->deviceName, "where to run")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  eval->add_option("--dump-grads", options->gradsPath,
                   "write the mean gradient of every parameter (f32)")
      ->type_name("G.safetensors");
  eval->add_flag("--json", options->json, "print {\"device\", \"loss\", \"micro_batches\"}");
  cli::setAction(*eval, [options] { return evalCommand(*options); });
}

}  // namespace tlc
