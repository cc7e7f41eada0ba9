// tlrun eval: run a compiled training step on weights and token data.
#include "runtime/commands/eval.h"

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/artifact.h"
#include "runtime/device.h"
#include "runtime/executor.h"
#include "runtime/half.h"
#include "runtime/inputs.h"
#include "runtime/safetensors.h"
#include "runtime/tokens.h"

namespace tlc {
namespace {

std::string shapeString(const std::vector<int64_t> &s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Parameter bytes in the artifact's dtype from any float tensor of the file.
std::vector<char> paramBytes(const safetensors::File &f, const artifact::Tensor &p) {
  const safetensors::TensorInfo &t = f.get(p.name);
  if (t.shape != p.shape)
    throw safetensors::Error(f.path() + ": tensor '" + p.name + "' has shape " + shapeString(t.shape) +
                             " but the model needs " + shapeString(p.shape));
  std::vector<double> values = f.toDoubles(t);
  std::vector<char> out(values.size() * artifact::dtypeSize(p.dtype));
  for (size_t i = 0; i < values.size(); ++i) {
    if (p.dtype == artifact::DType::BF16) {
      uint16_t h = floatToBf16(static_cast<float>(values[i]));
      std::memcpy(&out[i * 2], &h, 2);
    } else {
      float v = static_cast<float>(values[i]);
      std::memcpy(&out[i * 4], &v, 4);
    }
  }
  return out;
}

std::vector<double> toDoubles(const std::vector<char> &bytes, artifact::DType d) {
  size_t n = bytes.size() / artifact::dtypeSize(d);
  std::vector<double> out(n);
  for (size_t i = 0; i < n; ++i) {
    if (d == artifact::DType::BF16) {
      uint16_t h;
      std::memcpy(&h, &bytes[i * 2], 2);
      out[i] = bf16ToFloat(h);
    } else {
      float v;
      std::memcpy(&v, &bytes[i * 4], 4);
      out[i] = v;
    }
  }
  return out;
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
  inputs::expectKind(weights, inputs::FileKind::Safetensors, "--weights");
  inputs::expectKind(tokensPath, inputs::FileKind::TokenShard, "--tokens");
  if (!gradsPath.empty()) inputs::expectWritable(gradsPath, "--dump-grads");
  const artifact::Tensor *tokensIn = nullptr, *targetsIn = nullptr;
  for (const auto &in : a.inputs) {
    if (in.name == "tokens") tokensIn = &in;
    else if (in.name == "targets") targetsIn = &in;
    else throw artifact::Error(model + ": don't know how to feed input '" + in.name + "'");
  }
  if (!tokensIn || !targetsIn || tokensIn->shape.size() != 2)
    throw artifact::Error(model + ": the step needs inputs 'tokens' and 'targets' of shape [B, T]");
  if (a.outputs.empty() || a.outputs[0].name != "loss")
    throw artifact::Error(model + ": the step's first output must be the loss");
  int64_t batch = tokensIn->shape[0], seq = tokensIn->shape[1];

  if (!gradsPath.empty() && (a.outputs.size() < 2 || a.outputs[1].name.rfind("grad:", 0) != 0))
    throw artifact::Error(model + ": --dump-grads needs a training step with gradients");

  safetensors::File w = safetensors::File::open(weights);
  std::vector<inputs::ParamSpec> specs;
  for (const auto &p : a.params) specs.push_back({p.name, p.shape, artifact::dtypeName(p.dtype)});
  inputs::checkWeights(w, specs);
  std::vector<std::vector<char>> params;
  for (const auto &p : a.params) params.push_back(paramBytes(w, p));
  std::vector<uint16_t> tokens = tokens::readShard(tokensPath);
  size_t steps = tokens::requireMicroBatches(tokensPath, tokens.size(), batch, seq);
  inputs::checkTokenIds(tokensPath, tokens, steps, batch, seq, a.config.value("vocab", int64_t{0}));

  std::unique_ptr<Device> device = deviceName == "cuda" ? makeCudaDevice() : makeCpuDevice();
  Executor ex(a, *device);
  for (size_t i = 0; i < params.size(); ++i) ex.setParam(i, params[i].data());
  size_t tokensIndex = tokensIn - a.inputs.data(), targetsIndex = targetsIn - a.inputs.data();
  double lossSum = 0;
  std::vector<std::vector<double>> gradSums(a.outputs.size());
  for (size_t s = 0; s < steps; ++s) {
    tokens::MicroBatch mb = tokens::microBatch(tokens, s, batch, seq);
    ex.setInput(tokensIndex, mb.inputs.data());
    ex.setInput(targetsIndex, mb.targets.data());
    ex.run();
    for (size_t o = 0; o < a.outputs.size(); ++o) {
      std::vector<char> bytes(a.buffers[a.outputs[o].buffer].bytes);
      ex.getOutput(o, bytes.data());
      std::vector<double> v = toDoubles(bytes, a.outputs[o].dtype);
      if (gradSums[o].empty()) gradSums[o].assign(v.size(), 0.0);
      for (size_t k = 0; k < v.size(); ++k) gradSums[o][k] += v[k];
    }
  }
  lossSum = gradSums[0][0];
  double loss = lossSum / static_cast<double>(steps);

  if (!gradsPath.empty()) {
    std::vector<std::vector<float>> storage;
    std::vector<safetensors::TensorRef> refs;
    for (size_t o = 1; o < a.outputs.size(); ++o) {
      const std::string &name = a.outputs[o].name;
      if (name.rfind("grad:", 0) != 0) continue;
      std::vector<float> mean(gradSums[o].size());
      for (size_t k = 0; k < mean.size(); ++k) mean[k] = static_cast<float>(gradSums[o][k] / steps);
      storage.push_back(std::move(mean));
      refs.push_back({name.substr(5), safetensors::DType::F32, a.outputs[o].shape, storage.back().data()});
    }
    if (refs.empty()) throw artifact::Error(model + ": --dump-grads needs a training step with gradients");
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
  eval->add_option("--weights", options->weights, "parameters by their HF names (any float dtype)")
      ->required()
      ->type_name("W.safetensors");
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
