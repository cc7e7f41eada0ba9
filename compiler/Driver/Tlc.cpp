//===- Tlc.cpp - tlc subcommands: emit, info, eval -----------------------===//
#include "compiler/Driver/Tlc.h"

#include "compiler/Driver/ModelFunction.h"
#include "compiler/Evaluator/ReferenceEvaluator.h"
#include "compiler/Codegen/Lowering.h"
#include "compiler/Passes/Passes.h"
#include "compiler/Verify/FusionCheck.h"
#include "runtime/artifact.h"
#include "runtime/cuda_api.h"
#include "dialects/tl/IR/TlOps.h"
#include "models/tinyllama.h"
#include "runtime/safetensors.h"
#include "runtime/tokens.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>
#include <vector>

using namespace mlir;

namespace mlir::tl {
namespace {

constexpr const char *kUsage = R"(usage: tlc <command> [options]

commands:
  emit tinyllama --preset tiny|124m|1.1b [--set k=v,...] [--dtype f32|f64|bf16|f16]
                 [--train-step | --fused] [-o FILE]
      Emit the model's forward + loss function as tl MLIR (stdout by default);
      with --train-step, the training step (loss and every parameter's gradient);
      with --fused, the training step after the default pipeline (forward
      fusion, autodiff, elementwise fusion).
  compile FILE.mlir -o FILE.tlx [--target cpu|cuda|all] [--arch sm_90,...]
                [--print-ir-after-all] [--dump-kernels DIR] [--verify-fusion]
      Compile a model (forward + loss, or a training step) into a .tlx artifact:
      the default pipeline, kernel formation, memory planning, code generation.
  info FILE.mlir [--json]
      Print the model config, parameters (names, shapes, dtypes) and the total count.
  eval FILE.mlir --weights W.safetensors --tokens T.bin [--precision f32|f64] [--json]
                [--dump-grads G.safetensors]
      Run the function with the reference evaluator on every full micro-batch
      of an llm.c token shard and print the mean loss; for a training step,
      optionally write the mean gradients with the parameters' names.
)";

/// Command-line words after the subcommand, consumed as options are read.
class Args {
public:
  Args(int argc, char **argv, int first) {
    for (int i = first; i < argc; ++i) words_.push_back(argv[i]);
  }
  /// Removes `--name VALUE` (or `--name=VALUE`); false when absent.
  bool option(const std::string &name, std::string &value) {
    for (size_t i = 0; i < words_.size(); ++i) {
      if (words_[i] == name) {
        if (i + 1 >= words_.size()) throw std::string(name + " needs a value");
        value = words_[i + 1];
        words_.erase(words_.begin() + i, words_.begin() + i + 2);
        return true;
      }
      if (words_[i].rfind(name + "=", 0) == 0) {
        value = words_[i].substr(name.size() + 1);
        words_.erase(words_.begin() + i);
        return true;
      }
    }
    return false;
  }
  std::string required(const std::string &name) {
    std::string v;
    if (!option(name, v)) throw std::string("missing required option " + name);
    return v;
  }
  bool flag(const std::string &name) {
    for (size_t i = 0; i < words_.size(); ++i)
      if (words_[i] == name) {
        words_.erase(words_.begin() + i);
        return true;
      }
    return false;
  }
  /// The remaining positional words; any leftover option is an error.
  std::vector<std::string> positional() {
    for (const auto &w : words_)
      if (w.size() > 1 && w[0] == '-') throw std::string("unknown option '" + w + "'");
    return words_;
  }

private:
  std::vector<std::string> words_;
};

void loadDialects(MLIRContext &context) {
  DialectRegistry registry;
  registerTlDialects(registry);
  context.appendDialectRegistry(registry);
  context.loadAllAvailableDialects();
}

/// Parses and verifies FILE; diagnostics go to stderr with file:line:col.
OwningOpRef<ModuleOp> parseFile(const std::string &path, MLIRContext &context,
                                llvm::SourceMgr &sourceMgr) {
  std::string error;
  auto file = openInputFile(path, &error);
  if (!file) {
    llvm::errs() << "tlc: " << error << "\n";
    return nullptr;
  }
  sourceMgr.AddNewSourceBuffer(std::move(file), llvm::SMLoc());
  return parseSourceFile<ModuleOp>(sourceMgr, &context);
}

/// A parsed, verified model file and its function's signature; diagnostics
/// go to stderr with file:line:col.
struct ModelFile {
  MLIRContext context;
  llvm::SourceMgr sourceMgr;
  SourceMgrDiagnosticHandler handler{sourceMgr, &context};
  OwningOpRef<ModuleOp> module;
  func::FuncOp func;
  ModelSignature sig;

  /// False, after reporting why, when the file can't be used.
  bool load(const std::string &path) {
    loadDialects(context);
    module = parseFile(path, context, sourceMgr);
    if (!module || !(func = findModelFunction(*module))) return false;
    FailureOr<ModelSignature> signature = readSignature(func);
    if (failed(signature)) return false;
    sig = std::move(*signature);
    return true;
  }
};

Type parseFloatType(MLIRContext &context, const std::string &name) {
  Builder b(&context);
  if (name == "f32") return b.getF32Type();
  if (name == "f64") return b.getF64Type();
  if (name == "bf16") return b.getBF16Type();
  if (name == "f16") return b.getF16Type();
  throw std::string("--dtype must be f32, f64, bf16 or f16, got '" + name + "'");
}

int emitCommand(Args &args) {
  std::string presetName = args.required("--preset");
  std::string overrides, output = "-", dtype = "f32";
  args.option("--set", overrides);
  args.option("-o", output);
  args.option("--dtype", dtype);
  bool trainStep = args.flag("--train-step");
  bool fused = args.flag("--fused");
  std::vector<std::string> words = args.positional();
  if (words.size() != 1 || words[0] != "tinyllama")
    throw std::string("emit: expected the model name 'tinyllama'");

  auto config = ::tlc::models::preset(presetName);
  if (!config) throw "emit: " + llvm::toString(config.takeError());
  if (llvm::Error e = ::tlc::models::applyOverrides(*config, overrides))
    throw "emit: --set: " + llvm::toString(std::move(e));
  if (llvm::Error e = ::tlc::models::validate(*config))
    throw "emit: invalid config: " + llvm::toString(std::move(e));

  MLIRContext context;
  loadDialects(context);
  OwningOpRef<ModuleOp> module =
      ::tlc::models::buildTinyLlama(context, *config, parseFloatType(context, dtype));
  if (failed(verify(*module))) {
    llvm::errs() << "tlc: internal error: the emitted module does not verify\n";
    return 1;
  }
  if (trainStep || fused) {
    PassManager pm(&context);
    if (fused) buildTrainPipeline(pm);
    else pm.addPass(createTlAutodiff());
    if (failed(pm.run(*module))) return 1;
  }
  std::string error;
  auto out = openOutputFile(output, &error);
  if (!out) throw "emit: " + error;
  module->print(out->os());
  out->os() << "\n";  // as mlir-opt prints, so the output round-trips byte for byte
  out->keep();
  return 0;
}

std::string shapeString(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

std::string withCommas(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return out;
}

int infoCommand(Args &args) {
  bool json = args.flag("--json");
  std::vector<std::string> files = args.positional();
  if (files.size() != 1) throw std::string("info: expected one FILE.mlir");
  ModelFile model;
  if (!model.load(files[0])) return 1;
  func::FuncOp func = model.func;
  const ModelSignature &sig = model.sig;
  auto config = func->getAttrOfType<DictionaryAttr>(TLDialect::kModelAttrName);

  if (json) {
    llvm::json::Object fields;
    if (config)
      for (NamedAttribute a : config) {
        if (auto i = dyn_cast<IntegerAttr>(a.getValue()))
          fields[a.getName().str()] = i.getInt();
        else if (auto f = dyn_cast<FloatAttr>(a.getValue()))
          fields[a.getName().str()] = f.getValueAsDouble();
        else if (auto s = dyn_cast<StringAttr>(a.getValue()))
          fields[a.getName().str()] = s.str();
      }
    auto describe = [](const std::vector<NamedArgument> &list) {
      llvm::json::Array array;
      for (const auto &a : list)
        array.push_back(llvm::json::Object{{"name", a.name},
                                           {"shape", llvm::json::Array(a.shape)},
                                           {"dtype", a.dtype},
                                           {"count", a.count()}});
      return array;
    };
    llvm::json::Object root{{"function", func.getSymName().str()},
                            {"config", std::move(fields)},
                            {"parameters", describe(sig.params)},
                            {"inputs", describe(sig.inputs)},
                            {"outputs", describe(sig.outputs)},
                            {"gradients", describe(sig.grads)},
                            {"total_parameters", sig.parameterCount()}};
    llvm::outs() << llvm::formatv("{0:2}", llvm::json::Value(std::move(root))) << "\n";
    return 0;
  }
  llvm::outs() << "function: @" << func.getSymName() << "\n";
  if (config) {
    llvm::outs() << "config:";
    for (NamedAttribute a : config) {
      llvm::outs() << " " << a.getName().getValue() << "=";
      if (auto s = dyn_cast<StringAttr>(a.getValue())) llvm::outs() << s.getValue();
      else if (auto i = dyn_cast<IntegerAttr>(a.getValue())) llvm::outs() << i.getInt();
      else if (auto f = dyn_cast<FloatAttr>(a.getValue())) llvm::outs() << f.getValueAsDouble();
    }
    llvm::outs() << "\n";
  }
  llvm::outs() << "inputs:\n";
  for (const auto &a : sig.inputs)
    llvm::outs() << llvm::formatv("  {0,-10} {1,-14} {2}\n", a.name, shapeString(a.shape), a.dtype);
  llvm::outs() << "outputs:\n";
  for (const auto &o : sig.outputs)
    llvm::outs() << llvm::formatv("  {0,-10} {1,-14} {2}\n", o.name, shapeString(o.shape), o.dtype);
  if (!sig.grads.empty())
    llvm::outs() << "gradients: one per parameter (" << sig.grads.size() << ")\n";
  llvm::outs() << "parameters (" << sig.params.size() << " tensors):\n";
  for (const auto &p : sig.params)
    llvm::outs() << llvm::formatv("  {0,-48} {1,-14} {2,-5} {3,15}\n", p.name,
                                  shapeString(p.shape), p.dtype, withCommas(p.count()));
  llvm::outs() << "total parameters: " << withCommas(sig.parameterCount()) << "\n";
  return 0;
}

int compileCommand(Args &args) {
  auto start = std::chrono::steady_clock::now();
  std::string output = args.required("-o"), target = "all", dumpDir, archs;
  args.option("--target", target);
  args.option("--arch", archs);
  args.option("--dump-kernels", dumpDir);
  bool printIr = args.flag("--print-ir-after-all");
  bool verifyFusion = args.flag("--verify-fusion");
  std::vector<std::string> files = args.positional();
  if (files.size() != 1) throw std::string("compile: expected one FILE.mlir");
  if (target != "cpu" && target != "cuda" && target != "all")
    throw std::string("compile: --target must be cpu, cuda or all");
  ModelFile model;
  if (!model.load(files[0])) return 1;
  if (model.sig.grads.empty()) {  // a loss function: run the whole pipeline
    PassManager pm(&model.context);
    if (printIr) {
      model.context.disableMultithreading();
      pm.enableIRPrinting();
    }
    buildTrainPipeline(pm);
    if (failed(validation::runWithFusionChecking(pm, *model.module, verifyFusion))) return 1;
  }
  codegen::LoweringStats stats;
  FailureOr<::tlc::artifact::Artifact> artifact = codegen::lowerToArtifact(model.func, stats);
  if (failed(artifact)) return 1;
  if (target == "cpu") artifact->cudaSource.clear();
  if (target == "cuda") artifact->cpuSource.clear();
  // Precompiled cubins: tlrun uses them on a matching GPU, NVRTC otherwise.
  llvm::SmallVector<llvm::StringRef> archList;
  llvm::StringRef(archs).split(archList, ',', -1, /*KeepEmpty=*/false);
  for (llvm::StringRef arch : archList) {
    if (target == "cpu") throw std::string("compile: --arch needs CUDA kernels (--target cuda or all)");
    if (!arch.starts_with("sm_") || arch.size() < 5)
      throw "compile: --arch expects names like sm_90, got '" + arch.str() + "'";
    std::string why;
    if (!::tlc::cuda::nvrtcAvailable(&why)) throw "compile: --arch needs NVRTC: " + why;
    ::tlc::cuda::Compiled c = ::tlc::cuda::compileWithNvrtc(artifact->cudaSource, arch.str());
    if (!c.ok) throw "compile: NVRTC failed for " + arch.str() + ":\n" + c.log;
    artifact->cubins.emplace_back(arch.str(), std::move(c.cubin));
  }
  if (!dumpDir.empty()) {
    if (auto ec = llvm::sys::fs::create_directories(dumpDir))
      throw "compile: cannot create " + dumpDir + ": " + ec.message();
    for (auto [file, text] : {std::pair{"kernels.cpp", &artifact->cpuSource},
                              std::pair{"kernels.cu", &artifact->cudaSource}}) {
      std::string error;
      auto out = openOutputFile(dumpDir + "/" + file, &error);
      if (!out) throw "compile: " + error;
      out->os() << *text;
      out->keep();
    }
  }
  ::tlc::artifact::write(output, *artifact);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  llvm::outs() << llvm::formatv(
      "compiled {0} -> {1}\n  fused ops: {2}, fusion groups: {3}\n  kernels: {4}, GEMMs: {5}, "
      "steps: {6}\n  arena: {7} bytes planned (tensors sum to {8} bytes, {9:P} of it)\n"
      "  targets: {10}{12}\n  compile time: {11:F3} s\n",
      files[0], output, stats.fusedOps, stats.fusionGroups, stats.kernels, stats.gemms,
      artifact->steps.size(), withCommas(artifact->arenaBytes), withCommas(artifact->unplannedBytes),
      static_cast<double>(artifact->arenaBytes) / std::max<int64_t>(1, artifact->unplannedBytes),
      target, seconds, archs.empty() ? std::string() : " (cubins: " + archs + ")");
  return 0;
}

int evalCommand(Args &args) {
  std::string weightsPath = args.required("--weights");
  std::string tokensPath = args.required("--tokens");
  std::string precisionName = "f32";
  args.option("--precision", precisionName);
  bool json = args.flag("--json");
  std::string gradsPath;
  args.option("--dump-grads", gradsPath);
  std::vector<std::string> files = args.positional();
  if (files.size() != 1) throw std::string("eval: expected one FILE.mlir");
  if (precisionName != "f32" && precisionName != "f64")
    throw std::string("eval: --precision must be f32 or f64");
  Precision precision = precisionName == "f64" ? Precision::F64 : Precision::F32;

  ModelFile model;
  if (!model.load(files[0])) return 1;
  func::FuncOp func = model.func;
  const ModelSignature &sig = model.sig;
  // Results: the scalar loss, then (for a training step) named gradients.
  FunctionType ftype = func.getFunctionType();
  auto lossType = ftype.getNumResults() >= 1
                      ? dyn_cast<RankedTensorType>(ftype.getResult(0))
                      : RankedTensorType();
  if (!lossType || lossType.getRank() != 0)
    return func.emitError("eval: the function's first result must be a scalar loss"), 1;
  std::vector<std::string> gradNames;
  for (unsigned i = 1; i < ftype.getNumResults(); ++i) {
    auto name = func.getResultAttrOfType<StringAttr>(i, TLDialect::kGradAttrName);
    if (!name)
      return func.emitError() << "eval: result #" << i << " is not a tl.grad gradient", 1;
    gradNames.push_back(name.str());
  }
  if (!gradsPath.empty() && gradNames.empty())
    throw std::string("eval: --dump-grads needs a training step (emit with --train-step "
                      "or run tlc-opt --tl-autodiff)");

  // Token ids and targets come from the shard, both [B, T].
  const NamedArgument *tokensArg = nullptr, *targetsArg = nullptr;
  for (const auto &in : sig.inputs) {
    if (in.name == "tokens") tokensArg = &in;
    else if (in.name == "targets") targetsArg = &in;
    else throw "eval: don't know how to feed input '" + in.name + "'";
  }
  if (!tokensArg || !targetsArg || tokensArg->shape.size() != 2 ||
      tokensArg->shape != targetsArg->shape)
    throw std::string("eval: the function needs inputs 'tokens' and 'targets' of one shape [B, T]");
  int64_t batch = tokensArg->shape[0], seq = tokensArg->shape[1];

  std::vector<::tlc::HostTensor> argsIn(func.getNumArguments());
  ::tlc::safetensors::File weights = ::tlc::safetensors::File::open(weightsPath);
  for (const auto &p : sig.params) {
    const ::tlc::safetensors::TensorInfo &t = weights.get(p.name);
    if (t.shape != p.shape)
      throw weightsPath + ": tensor '" + p.name + "' has shape " + shapeString(t.shape) +
          " but the model needs " + shapeString(p.shape);
    argsIn[p.index] = ::tlc::HostTensor(p.shape, weights.toDoubles(t));
  }

  std::vector<uint16_t> tokens = ::tlc::tokens::readShard(tokensPath);
  size_t steps = ::tlc::tokens::requireMicroBatches(tokensPath, tokens.size(), batch, seq);
  double total = 0;
  std::vector<::tlc::HostTensor> gradSums;
  for (size_t s = 0; s < steps; ++s) {
    ::tlc::tokens::MicroBatch mb = ::tlc::tokens::microBatch(tokens, s, batch, seq);
    argsIn[tokensArg->index] = ::tlc::HostTensor(tokensArg->shape, {mb.inputs.begin(), mb.inputs.end()});
    argsIn[targetsArg->index] = ::tlc::HostTensor(targetsArg->shape, {mb.targets.begin(), mb.targets.end()});
    auto results = evaluate(func, argsIn, precision);
    if (failed(results)) return 1;
    total += (*results)[0].data[0];
    if (gradSums.empty()) {
      gradSums.assign(results->begin() + 1, results->end());
    } else {
      for (size_t g = 0; g < gradSums.size(); ++g)
        for (int64_t i = 0; i < gradSums[g].numel(); ++i)
          gradSums[g].data[i] += (*results)[g + 1].data[i];
    }
  }
  double loss = total / static_cast<double>(steps);
  if (!gradsPath.empty()) {
    // The gradient of the mean loss is the mean of the micro-batch gradients.
    bool f64 = precision == Precision::F64;
    std::vector<std::vector<char>> storage;
    std::vector<::tlc::safetensors::TensorRef> refs;
    for (size_t g = 0; g < gradSums.size(); ++g) {
      const ::tlc::HostTensor &t = gradSums[g];
      std::vector<char> bytes(t.numel() * (f64 ? 8 : 4));
      for (int64_t i = 0; i < t.numel(); ++i) {
        double v = t.data[i] / static_cast<double>(steps);
        if (f64) std::memcpy(&bytes[i * 8], &v, 8);
        else { float f = static_cast<float>(v); std::memcpy(&bytes[i * 4], &f, 4); }
      }
      storage.push_back(std::move(bytes));
      refs.push_back({gradNames[g], f64 ? ::tlc::safetensors::DType::F64 : ::tlc::safetensors::DType::F32,
                      t.shape, storage.back().data()});
    }
    ::tlc::safetensors::write(gradsPath, refs, {{"content", "mean gradients"}});
  }
  if (json) {
    llvm::json::Object root{{"loss", loss},
                            {"micro_batches", static_cast<int64_t>(steps)},
                            {"precision", precisionName}};
    llvm::outs() << llvm::json::Value(std::move(root)) << "\n";
  } else {
    llvm::outs() << llvm::format("loss: %.17g (mean of %zu micro-batches, %s)\n", loss,
                                 steps, precisionName.c_str());
  }
  return 0;
}

} // namespace

int runTlc(int argc, char **argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    llvm::outs() << kUsage;
    return argc < 2 ? 1 : 0;
  }
  std::string command = argv[1];
  Args args(argc, argv, 2);
  try {
    if (command == "emit") return emitCommand(args);
    if (command == "info") return infoCommand(args);
    if (command == "compile") return compileCommand(args);
    if (command == "eval") return evalCommand(args);
    llvm::errs() << "tlc: unknown command '" << command << "'\n" << kUsage;
    return 1;
  } catch (const std::string &message) {
    llvm::errs() << "tlc: " << message << "\n";
  } catch (const std::exception &e) {
    llvm::errs() << "tlc: " << e.what() << "\n";
  }
  return 1;
}

} // namespace mlir::tl
