//===- Tlc.cpp - tlc subcommands: emit, info, eval -----------------------===//
#include "compiler/Driver/Tlc.h"

#include "compiler/Driver/Compile.h"
#include "compiler/Driver/MemoryPlan.h"
#include "compiler/Driver/ModelFunction.h"
#include "compiler/Evaluator/ReferenceEvaluator.h"
#include "compiler/Codegen/Lowering.h"
#include "compiler/Passes/Passes.h"
#include "compiler/Verify/FusionCheck.h"
#include "formats/artifact.h"
#include "cli/cli.h"
#include "runtime/cuda/nvrtc.h"
#include "cli/inputs.h"
#include "dialects/tl/IR/TlOps.h"
#include "models/tinyllama.h"
#include "formats/safetensors.h"
#include "formats/tokens.h"

#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/JSON.h"
#include "llvm/Support/SourceMgr.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <optional>
#include <map>
#include <string>
#include <vector>

using namespace mlir;

namespace mlir::tl {
namespace {

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
    ::tlc::inputs::expectKind(path, ::tlc::inputs::FileKind::Text, "");
    loadDialects(context);
    context.printOpOnDiagnostic(false);  // a model's op dump is megabytes
    // Registered last, so it sees diagnostics first: one whose source line
    // is huge (a model function's signature) is printed without the line.
    context.getDiagEngine().registerHandler([this](Diagnostic &diag) {
      return printWithoutLongLine(diag);
    });
    module = parseFile(path, context, sourceMgr);
    if (!module || !(func = findModelFunction(*module))) return false;
    FailureOr<ModelSignature> signature = readSignature(func);
    if (failed(signature)) return false;
    sig = std::move(*signature);
    return true;
  }

private:
  LogicalResult printWithoutLongLine(Diagnostic &diag) {
    auto loc = dyn_cast<FileLineColLoc>(diag.getLocation());
    if (!loc || sourceMgr.getNumBuffers() == 0) return failure();
    const llvm::MemoryBuffer *buffer = sourceMgr.getMemoryBuffer(sourceMgr.getMainFileID());
    if (buffer->getBufferIdentifier() != loc.getFilename().getValue()) return failure();
    llvm::StringRef text = buffer->getBuffer();
    for (unsigned line = 1; line < loc.getLine() && !text.empty(); ++line)
      text = text.split('\n').second;
    constexpr size_t kLongestEchoedLine = 240;
    if (text.split('\n').first.size() <= kLongestEchoedLine) return failure();
    const char *kind = diag.getSeverity() == DiagnosticSeverity::Error     ? "error"
                       : diag.getSeverity() == DiagnosticSeverity::Warning ? "warning"
                                                                            : "remark";
    llvm::errs() << loc.getFilename().getValue() << ":" << loc.getLine() << ":" << loc.getColumn() << ": "
                 << kind << ": " << diag.str() << "\n";
    for (Diagnostic &note : diag.getNotes()) llvm::errs() << "note: " << note.str() << "\n";
    return success();
  }
};

// What each subcommand was given; filled by the parser (see the end of the
// file), read by the command's work function.
struct EmitOptions {
  std::string model, presetName, output = "-", dtype = "f32";
  std::vector<std::string> sets;
  bool trainStep = false, fused = false;
};
struct InfoOptions {
  std::string file;
  bool json = false;
};
struct CompileOptions {
  std::string file, output, target = "all", dumpDir, archs, memoryBudget, recompute;
  bool printIr = false, verifyFusion = false, report = false;
  int ranks = 1;  // data-parallel ranks sharing the optimizer state (--ranks)
};
struct EvalOptions {
  std::string file, weightsPath, tokensPath, precisionName = "f32", gradsPath;
  bool json = false;
};

/// Code generation stores f32, bf16 and i32; say so before any work, naming
/// the first tensor that is not one of them.
void checkStorageTypes(const ModelSignature &sig, const std::string &path) {
  for (const auto *list : {&sig.params, &sig.inputs})
    for (const NamedArgument &a : *list)
      if (a.dtype != "f32" && a.dtype != "bf16" && a.dtype != "i32")
        throw path + ": " + (list == &sig.params ? "parameter '" : "input '") + a.name +
            "' has dtype " + a.dtype +
            "; tlc compile stores f32, bf16 and i32 (f64 and f16 models are for tlc eval)";
}

/// The tl.model vocabulary size, or 0 when the function has none.
int64_t modelVocab(func::FuncOp func) {
  auto config = func->getAttrOfType<DictionaryAttr>(TLDialect::kModelAttrName);
  auto vocab = config ? config.getAs<IntegerAttr>("vocab") : IntegerAttr();
  return vocab ? vocab.getInt() : 0;
}

Type parseFloatType(MLIRContext &context, const std::string &name) {
  Builder b(&context);
  if (name == "f32") return b.getF32Type();
  if (name == "f64") return b.getF64Type();
  if (name == "bf16") return b.getBF16Type();
  if (name == "f16") return b.getF16Type();
  throw std::string("--dtype must be f32, f64, bf16 or f16, got '" + name + "'");
}

int emitCommand(const EmitOptions &options) {
  const std::string &presetName = options.presetName, &output = options.output,
                    &dtype = options.dtype;
  const bool trainStep = options.trainStep, fused = options.fused;
  ::tlc::inputs::expectWritable(output, "-o");

  auto config = ::tlc::models::preset(presetName);
  if (!config) throw "emit: " + llvm::toString(config.takeError());
  nlohmann::json overrides = ::tlc::cli::parseSetList(options.sets, "--set");
  ::tlc::cli::rejectUnknownKeys(overrides, ::tlc::models::overrideKeys(), "--set");
  for (auto it = overrides.begin(); it != overrides.end(); ++it) {
    std::string item = it.key() + "=" + (it->is_string() ? it->get<std::string>() : it->dump());
    if (llvm::Error e = ::tlc::models::applyOverrides(*config, item))
      throw ::tlc::cli::UsageError("emit: --set: " + llvm::toString(std::move(e)));
  }
  // The preset is valid: a bad config comes from --set (usage, exit 2).
  if (llvm::Error e = ::tlc::models::validate(*config))
    throw ::tlc::cli::UsageError("emit: --set: invalid config: " + llvm::toString(std::move(e)));

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

int infoCommand(const InfoOptions &options) {
  const bool json = options.json;
  ModelFile model;
  if (!model.load(options.file)) return 1;
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

int compileCommand(const CompileOptions &options) {
  auto start = std::chrono::steady_clock::now();
  const std::string &output = options.output, &target = options.target,
                    &dumpDir = options.dumpDir, &archs = options.archs;
  const bool printIr = options.printIr;
  const std::vector<std::string> files = {options.file};
  if (::tlc::inputs::sameFile(options.file, output))
    throw ::tlc::cli::UsageError("compile: -o " + output + " is the input " + options.file +
                                 ": the artifact would replace the model; give another output path");
  ::tlc::inputs::expectWritable(output, "-o");
  if (!dumpDir.empty()) ::tlc::inputs::expectWritableDirectory(dumpDir, "--dump-kernels");
  // --arch is checked before the work (usage errors); NVRTC runs after it.
  llvm::SmallVector<llvm::StringRef> archList;
  llvm::StringRef(archs).split(archList, ',', -1, /*KeepEmpty=*/false);
  for (llvm::StringRef arch : archList) {
    if (target == "cpu")
      throw ::tlc::cli::UsageError("compile: --arch needs CUDA kernels (--target cuda or all)");
    if (!arch.starts_with("sm_") || arch.size() < 5)
      throw ::tlc::cli::UsageError("compile: --arch expects names like sm_90, got '" + arch.str() + "'");
  }
  // --recompute's default: TLC_RECOMPUTE (for running a test suite with
  // recomputation), else auto under a budget, none without.
  std::string modeName = options.recompute;
  const char *fromEnvironment = std::getenv("TLC_RECOMPUTE");
  if (modeName.empty() && fromEnvironment && *fromEnvironment) modeName = fromEnvironment;
  if (modeName.empty()) modeName = options.memoryBudget.empty() ? "none" : "auto";
  std::optional<RecomputeMode> mode = parseRecomputeMode(modeName);
  if (!mode)
    throw ::tlc::cli::UsageError("compile: --recompute (or TLC_RECOMPUTE) must be none, auto or full, got '" +
                                 modeName + "'");
  int64_t budget = options.memoryBudget.empty() ? 0 : parseByteSize(options.memoryBudget, "--memory-budget");
  // The budget is for the whole device; what recomputation can change is the
  // arena, so the planner gets what the parameters, gradients and optimizer
  // state leave. Its estimate of the arena is close, not exact (the planner's
  // first fit fragments): a plan over the budget is redone with the overshoot
  // taken off, a few times.
  RecomputeReport recomputed;
  FailureOr<::tlc::artifact::Artifact> artifact = failure();
  codegen::LoweringStats stats;
  int64_t plannerBudget = 0, available = 0;
  constexpr int kBudgetAttempts = 5;
  for (int attempt = 0; attempt < kBudgetAttempts; ++attempt) {
    ModelFile model;
    if (!model.load(files[0])) return 1;
    checkStorageTypes(model.sig, files[0]);
    if (budget > 0 && attempt == 0) {
      int64_t paramBytes = !model.sig.params.empty() && model.sig.params[0].dtype == "bf16" ? 2 : 4;
      DeviceState state = deviceStateOf(model.sig.parameterCount(), paramBytes, options.ranks);
      available = budget - state.total();
      if (available <= 0)
        throw "compile: --memory-budget " + options.memoryBudget + " (" + humanBytes(budget) +
            ") does not hold the training state alone: parameters, gradients and optimizer state take " +
            humanBytes(state.total()) + " before any activation" +
            (options.ranks == 1 ? std::string(" (on N data-parallel ranks with zero >= 1, --ranks N counts 1/N "
                                              "of the optimizer state)")
                                : " on each of " + std::to_string(options.ranks) + " ranks");
      plannerBudget = available;
    }
    if (budget > 0 && attempt == kBudgetAttempts - 1) plannerBudget = 1;  // the last try: everything
    stats = {};
    recomputed = {};
    RecomputeRequest request{*mode, plannerBudget, &recomputed};
    artifact = compileModel(*model.module, model.func, model.sig.grads.empty(), printIr, options.verifyFusion,
                            stats, request);
    if (failed(artifact)) return 1;
    if (budget <= 0 || deviceTotal(*artifact, options.ranks) <= budget || plannerBudget == 1) break;
    // The overshoot and a margin for the estimate's error (4 MiB, less for a
    // small step); at 1 byte the planner recomputes whatever lowers the peak,
    // as --recompute full does, which is the last try.
    plannerBudget -= deviceTotal(*artifact, options.ranks) - budget + std::min<int64_t>(4ll << 20, available / 32);
    plannerBudget = std::max<int64_t>(plannerBudget, 1);
  }
  if (budget > 0 && deviceTotal(*artifact, options.ranks) > budget)
    throw "compile: the step does not fit --memory-budget " + options.memoryBudget + " (" + humanBytes(budget) +
        "): it needs " + humanBytes(deviceTotal(*artifact, options.ranks)) + ", of which the arena is " +
        humanBytes(artifact->arenaBytes) +
        (*mode == RecomputeMode::None ? std::string(" with nothing recomputed (--recompute none)")
                                      : std::string(" with everything recomputed that lowers it")) +
        "; a smaller micro_batch or seq lowers the arena" +
        (options.ranks == 1 ? std::string(", and on N data-parallel ranks with zero >= 1 --ranks N counts 1/N of "
                                          "the optimizer state")
                            : std::string());
  if (target == "cpu") artifact->cudaSource.clear();
  if (target == "cuda") artifact->cpuSource.clear();
  // Precompiled cubins: tlrun uses them on a matching GPU, NVRTC otherwise.
  for (llvm::StringRef arch : archList) {
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
      "compiled {0} -> {1}\n  fused ops: {2}, fusion groups: {3}\n  kernels: {4}, GEMMs: {5}\n"
      "{6}  flat parameters: {7} elements ({8})\n  arena: {9} bytes (the largest entry point's)\n"
      "{13}{14}  targets: {10}{12}\n  compile time: {11:F3} s\n",
      files[0], output, stats.fusedOps, stats.fusionGroups, stats.kernels, stats.gemms,
      entryPointSummary(*artifact), withCommas(artifact->flatElements),
      ::tlc::artifact::dtypeName(artifact->paramDType()), withCommas(artifact->arenaBytes), target,
      seconds, archs.empty() ? std::string() : " (cubins: " + archs + ")", recomputeSummary(recomputed),
      memoryEstimate(*artifact, options.ranks));
  if (options.report) llvm::outs() << recomputeDecisions(recomputed);
  return 0;
}

int evalCommand(const EvalOptions &options) {
  const std::string &weightsPath = options.weightsPath, &tokensPath = options.tokensPath,
                    &precisionName = options.precisionName, &gradsPath = options.gradsPath;
  const bool json = options.json;
  const std::vector<std::string> files = {options.file};
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

  // Every input recognised and every output writable before any work.
  ::tlc::inputs::expectKind(weightsPath, ::tlc::inputs::FileKind::Safetensors, "--weights");
  ::tlc::inputs::expectKind(tokensPath, ::tlc::inputs::FileKind::TokenShard, "--tokens");
  if (!gradsPath.empty()) ::tlc::inputs::expectWritable(gradsPath, "--dump-grads");

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
  if (failed(checkTensorSizes(func))) return 1;  // the evaluator stores every tensor

  std::vector<::tlc::HostTensor> argsIn(func.getNumArguments());
  ::tlc::safetensors::File weights = ::tlc::safetensors::File::open(weightsPath);
  std::vector<::tlc::inputs::ParamSpec> specs;
  for (const auto &p : sig.params) specs.push_back({p.name, p.shape, p.dtype});
  ::tlc::inputs::checkWeights(weights, specs);
  std::vector<uint16_t> tokens = ::tlc::tokens::readShard(tokensPath);
  size_t steps = ::tlc::tokens::requireMicroBatches(tokensPath, tokens.size(), batch, seq);
  ::tlc::inputs::checkTokenIds(tokensPath, tokens, steps, batch, seq, modelVocab(func));

  for (const auto &p : sig.params)
    argsIn[p.index] = ::tlc::HostTensor(p.shape, weights.toDoubles(weights.get(p.name)));
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

// ---- Command line: each subcommand's options; the work is above. ----

void addEmitCommand(CLI::App &tlc) {
  auto o = std::make_shared<EmitOptions>();
  CLI::App *emit = tlc.add_subcommand(
      "emit", "Emit the model's forward + loss function as tl MLIR (stdout by default);\n"
              "with --train-step, the training step (loss and every parameter's gradient);\n"
              "with --fused, the training step after the default pipeline.");
  emit->add_option("MODEL", o->model, "the model to emit: tinyllama")
      ->required()
      ->type_name("")
      ->check(CLI::IsMember({"tinyllama"}).description(""));
  emit->add_option("--preset", o->presetName, "the model's sizes")
      ->required()
      ->check(CLI::IsMember(::tlc::models::presetNames()));
  ::tlc::cli::repeatable(emit->add_option(
                             "--set", o->sets,
                             "override preset fields, key=value[,key=value...]; keys: " +
                                 llvm::join(::tlc::models::overrideKeys(), ", ") +
                                 "; repeatable"))
      ->type_name("K=V,...");
  emit->add_option("--dtype", o->dtype, "parameter and activation type")
      ->check(CLI::IsMember({"f32", "f64", "bf16", "f16"}));
  CLI::Option *train =
      emit->add_flag("--train-step", o->trainStep, "emit the training step (tl-autodiff)");
  CLI::Option *fused = emit->add_flag(
      "--fused", o->fused, "emit the training step after the default pipeline (tl-train-pipeline)");
  train->excludes(fused);
  emit->add_option("-o", o->output, "output file ('-' is stdout)")->type_name("FILE");
  ::tlc::cli::setAction(*emit, [o] { return emitCommand(*o); });
}

void addInfoCommand(CLI::App &tlc) {
  auto o = std::make_shared<InfoOptions>();
  CLI::App *info = tlc.add_subcommand(
      "info", "Print the model config, parameters (names, shapes, dtypes) and the total count.");
  info->add_option("FILE", o->file, "the model (.mlir; '-' is stdin)")->required()->type_name("");
  info->add_flag("--json", o->json, "print one JSON object");
  ::tlc::cli::setAction(*info, [o] { return infoCommand(*o); });
}

void addCompileCommand(CLI::App &tlc) {
  auto o = std::make_shared<CompileOptions>();
  CLI::App *compile = tlc.add_subcommand(
      "compile", "Compile a model (forward + loss, or a training step) into a .tlx artifact:\n"
                 "the default pipeline, kernel formation, memory planning, code generation.");
  compile->add_option("FILE", o->file, "the model (.mlir; '-' is stdin)")->required()->type_name("");
  compile->add_option("-o", o->output, "the artifact to write")->required()->type_name("FILE.tlx");
  compile->add_option("--target", o->target, "which kernel sources the artifact carries")
      ->check(CLI::IsMember({"cpu", "cuda", "all"}));
  compile->add_option("--arch", o->archs, "also embed cubins compiled with NVRTC, e.g. sm_80,sm_90")
      ->type_name("SM,...");
  compile->add_flag("--print-ir-after-all", o->printIr, "print the IR after every pass (stderr)");
  compile->add_flag("--verify-fusion", o->verifyFusion,
                    "check every fusion on random inputs of its real shapes with the reference evaluator;\n"
                    "a fusion that changes the numbers is an error (docs/writing-a-fusion-pass.md)");
  compile->add_option("--dump-kernels", o->dumpDir, "write DIR/kernels.cpp and DIR/kernels.cu")
      ->type_name("DIR");
  compile->add_option("--memory-budget", o->memoryBudget,
                      "fit one device's training memory (parameters, gradients, optimizer state,\n"
                      "activations) in SIZE by recomputing forward values in the backward, e.g. 30GiB")
      ->type_name("SIZE");
  compile->add_option("--recompute", o->recompute,
                      "none: keep every forward value; auto: recompute the cheap ones (elementwise,\n"
                      "norms, rope), then what fits --memory-budget at the fewest FLOPs; full: all that\n"
                      "lowers the peak. Default: auto with --memory-budget, else none (or TLC_RECOMPUTE)")
      ->type_name("MODE");
  compile->add_option("--ranks", o->ranks,
                      "data-parallel ranks sharing the optimizer state (tlrun train with zero >= 1): the\n"
                      "estimate and --memory-budget count the largest rank's 1/N of it (parameters and\n"
                      "gradients whole, as GPU ranks hold them). Default 1: one unsharded rank")
      ->type_name("N")
      ->check(CLI::Range(1, 1 << 20));
  compile->add_flag("--report", o->report, "list what is recomputed (op, values, bytes, FLOPs, where)");
  ::tlc::cli::setAction(*compile, [o] { return compileCommand(*o); });
}

void addEvalCommand(CLI::App &tlc) {
  auto o = std::make_shared<EvalOptions>();
  CLI::App *eval = tlc.add_subcommand(
      "eval", "Run the function with the reference evaluator on every full micro-batch of an\n"
              "llm.c token shard and print the mean loss; for a training step, optionally\n"
              "write the mean gradients.");
  eval->add_option("FILE", o->file, "the model (.mlir; '-' is stdin)")->required()->type_name("");
  eval->add_option("--weights", o->weightsPath, "parameters by name (any float dtype)")
      ->required()
      ->type_name("W.safetensors");
  eval->add_option("--tokens", o->tokensPath, "an llm.c token shard")
      ->required()
      ->type_name("T.bin");
  eval->add_option("--precision", o->precisionName, "the evaluator's arithmetic")
      ->check(CLI::IsMember({"f32", "f64"}));
  eval->add_flag("--json", o->json, "print {\"loss\", \"micro_batches\", \"precision\"}");
  eval->add_option("--dump-grads", o->gradsPath,
                   "write the mean gradients (training steps; f32 or f64 as --precision)")
      ->type_name("G.safetensors");
  ::tlc::cli::setAction(*eval, [o] { return evalCommand(*o); });
}

} // namespace mlir::tl
