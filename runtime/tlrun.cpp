// tlrun eval: run a compiled training step on weights and token data.
#include "runtime/tlrun.h"

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <CLI/CLI.hpp>

#include "runtime/artifact.h"
#include "runtime/data/prepare.h"
#include "runtime/device.h"
#include "runtime/engine.h"
#include "runtime/generate/generate.h"
#include "runtime/half.h"
#include "runtime/safetensors.h"
#include "runtime/tokens.h"
#include "runtime/train/command.h"

namespace tlc {
namespace {

constexpr const char *kUsage = R"(usage: tlrun <command> [options]

commands:
  train MODEL.tlx --data DIR --out RUN_DIR [...]   (tlrun train --help)
  plot RUN_DIR [-o FILE.svg]                        (tlrun plot --help)
  export RUN_DIR|CHECKPOINT --hf OUT_DIR [...]      (tlrun export --help)
  eval MODEL.tlx --weights W.safetensors --tokens T.bin [--device cpu|cuda]
                 [--dump-grads G.safetensors] [--json]
      Run the compiled training step on every full micro-batch of an llm.c
      token shard; print the mean loss, optionally write the mean gradients.
  generate RUN_DIR|CHECKPOINT --prompt TEXT [...]  (tlrun generate --help)
  prepare --input FILES|DIRS... --out DIR [--tokenizer M | --train-tokenizer N] ...
      Tokenize text into llm.c token shards (see tlrun prepare --help).
)";

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

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

int evalCommand(const std::vector<std::string> &args) {
  std::string model, weights, tokensPath, deviceName = "cpu", gradsPath;
  bool json = false;
  for (size_t i = 0; i < args.size(); ++i) {
    auto value = [&]() -> std::string {
      if (i + 1 >= args.size()) throw UsageError(args[i] + " needs a value");
      return args[++i];
    };
    if (args[i] == "--weights") weights = value();
    else if (args[i] == "--tokens") tokensPath = value();
    else if (args[i] == "--device") deviceName = value();
    else if (args[i] == "--dump-grads") gradsPath = value();
    else if (args[i] == "--json") json = true;
    else if (args[i][0] == '-') throw UsageError("unknown option '" + args[i] + "'");
    else if (model.empty()) model = args[i];
    else throw UsageError("unexpected argument '" + args[i] + "'");
  }
  if (model.empty() || weights.empty() || tokensPath.empty())
    throw UsageError("eval needs MODEL.tlx, --weights and --tokens");
  if (deviceName != "cpu" && deviceName != "cuda")
    throw UsageError("--device must be cpu or cuda, got '" + deviceName + "'");

  artifact::Artifact a = artifact::read(model);
  const artifact::EntryPoint *step = a.entry(artifact::kTrainStep);
  if (!step || step->inputs.empty() || step->inputs[0].shape.size() != 2)
    throw artifact::Error(model + ": no training step with inputs 'tokens' and 'targets' of shape [B, T]");
  int64_t batch = step->inputs[0].shape[0], seq = step->inputs[0].shape[1];
  safetensors::File w = safetensors::File::open(weights);
  std::vector<std::vector<float>> params;
  for (const auto &p : a.params) params.push_back(paramValues(w, p));
  std::vector<uint16_t> tokens = tokens::readShard(tokensPath);
  size_t steps = tokens::requireMicroBatches(tokensPath, tokens.size(), batch, seq);

  std::unique_ptr<Device> device = deviceName == "cuda" ? makeCudaDevice() : makeCpuDevice();
  Engine engine(a, *device);
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

int runTlrun(int argc, char **argv) {
  if (argc >= 2 && (!std::strcmp(argv[1], "train") || !std::strcmp(argv[1], "plot") ||
                    !std::strcmp(argv[1], "export"))) return train::runCli(argc, argv);
  if (argc >= 2 && !std::strcmp(argv[1], "generate")) return generate::runCli(argc, argv);
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    std::fputs(kUsage, stdout);
    return argc < 2 ? 1 : 0;
  }
  std::string command = argv[1];
  std::vector<std::string> args(argv + 2, argv + argc);
  try {
    if (command == "eval") return evalCommand(args);
    if (command == "prepare") {
      CLI::App app("tlrun");
      data::addPrepareCommand(app);
      try {
        app.parse(argc, argv);
      } catch (const CLI::ParseError &e) {
        return app.exit(e) == 0 ? 0 : 1;  // --help, or a usage error
      }
      return 0;
    }
    std::fprintf(stderr, "tlrun: unknown command '%s'\n%s", command.c_str(), kUsage);
  } catch (const UsageError &e) {
    std::fprintf(stderr, "tlrun: %s\n%s", e.what(), kUsage);
  } catch (const std::exception &e) {
    std::fprintf(stderr, "tlrun: %s\n", e.what());
  }
  return 1;
}

}  // namespace tlc
