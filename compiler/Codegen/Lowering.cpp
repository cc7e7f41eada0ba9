//===- Lowering.cpp - a training step to a .tlx artifact -----------------===//
#include "compiler/Codegen/Lowering.h"

#include "compiler/Codegen/CommPlan.h"
#include "compiler/Codegen/ExprGen.h"
#include "compiler/Codegen/KernelInterfaces.h"
#include "compiler/Codegen/OptimizerKernels.h"
#include "compiler/Passes/Passes.h"
#include "dialects/tl/IR/TlOps.h"

#include "llvm/ADT/DenseSet.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <map>

namespace mlir::tl::codegen {
namespace art = ::tlc::artifact;
namespace {

constexpr int64_t kAlignment = 256;

int64_t bytesOf(Value v) {
  auto t = cast<RankedTensorType>(v.getType());
  Type e = t.getElementType();
  int64_t size = e.isBF16() || e.isF16() ? 2 : e.isInteger(1) ? 1 : e.isF64() ? 8 : 4;
  return t.getNumElements() * size;
}

FailureOr<art::DType> dtypeOf(Value v, Location loc) {
  Type e = cast<RankedTensorType>(v.getType()).getElementType();
  if (e.isF32()) return art::DType::F32;
  if (e.isBF16()) return art::DType::BF16;
  if (e.isInteger(32)) return art::DType::I32;
  return emitError(loc) << "code generation: tensors bound by the runtime must be f32, bf16 or i32, got "
                        << e;
}

std::string locationOf(Operation *op) {
  std::string s;
  llvm::raw_string_ostream os(s);
  op->getLoc().print(os);
  return os.str();
}

/// A transpose of the last two dimensions folds into a GEMM that reads it:
/// the GEMM flips its transpose flag and reads the transpose's input.
/// Returns that input, or null when `operand` is no such transpose.
Value foldedTranspose(Value operand) {
  auto t = operand.getDefiningOp<TransposeOp>();
  if (!t) return {};
  ArrayRef<int64_t> perm = t.getPerm();
  int64_t n = static_cast<int64_t>(perm.size());
  for (int64_t i = 0; i < n; ++i)
    if (perm[i] != (i < n - 2 ? i : i == n - 2 ? n - 1 : n - 2)) return {};
  return n >= 2 ? t.getInput() : Value();
}

/// Whether every user of `t` is a GEMM it folds into (no kernel needed).
bool foldsIntoGemms(TransposeOp t) {
  return foldedTranspose(t.getResult()) && !t.getResult().use_empty() &&
         llvm::all_of(t.getResult().getUsers(), [](Operation *u) { return isa<MatmulOp>(u); });
}

class Lowering {
public:
  FailureOr<art::Artifact> run(ArrayRef<EntryFunction> entries, LoweringStats &stats);

private:
  int newBuffer(int64_t bytes, art::BufferKind kind, int64_t index = 0) {
    a.buffers.push_back({bytes, kind, index});
    firstStep.push_back(static_cast<int>(e->steps.size()));
    lastStep.push_back(static_cast<int>(e->steps.size()));
    return static_cast<int>(a.buffers.size()) - 1;
  }
  int bufferFor(Value v) {
    auto it = buffer.find(v);
    if (it != buffer.end()) return it->second;
    int b = newBuffer(bytesOf(v), art::BufferKind::Arena);
    buffer[v] = b;
    return b;
  }
  void use(int b) { lastStep[b] = static_cast<int>(e->steps.size()); }
  LogicalResult lowerEntry(const EntryFunction &entry, LoweringStats &stats);
  LogicalResult bindArguments(func::FuncOp func);
  LogicalResult bindResults(func::FuncOp func);
  LogicalResult lowerOp(Operation *op);
  LogicalResult accumulateGradients(Value root, Location loc, Operation *op);
  void addKernelStep(const KernelSpec &k, std::vector<int> buffers, Operation *op);
  void plan(int firstBuffer);

  art::Artifact a;
  art::EntryPoint *e = nullptr;  // the entry point being lowered
  std::vector<KernelSpec> kernels;
  std::map<std::string, std::string> kernelByKey;  // kernelKey -> the kernel's name
  std::map<std::string, int> paramIndex;  // by name, across entry points
  std::map<int, int> gradBuffer;          // parameter index -> its Grad buffer
  // Per entry point: values' buffers, gradient roots still to be added into
  // the flat gradient buffer (with their Grad buffers), GEMM results that
  // accumulate straight into one.
  DenseMap<Value, int> buffer;
  DenseMap<Value, std::vector<int>> pendingGrads;
  DenseSet<Value> accumulatingGemms;
  DenseSet<Operation *> addsDoneByGemms;  // adds whose GEMM operand added itself in
  Value accumulationTarget(MatmulOp matmul);
  std::vector<int> firstStep, lastStep;
  BatchAnalysis batch;  // of the entry point being lowered
  std::vector<Count> opCounts;  // the counts of the op being lowered (its kernels' arguments)
  int counter = 0;
  KernelContext context(int errorCode) { return {errorCode, &batch, &opCounts}; }
};

void Lowering::addKernelStep(const KernelSpec &spec, std::vector<int> buffers, Operation *op) {
  for (int b : buffers) use(b);
  // Every kernel of an op takes all of the op's counts; the step passes
  // them (and its grid), so equal kernel texts share one kernel.
  KernelSpec k = spec;
  k.numCounts = static_cast<int>(opCounts.size());
  art::Step s;
  s.kind = art::Step::Kernel;
  s.buffers = std::move(buffers);
  s.location = locationOf(op);
  s.grid = k.grid;
  s.gridScales = k.batchedGrid;
  for (const Count &c : opCounts) {
    s.counts.push_back(c.compiled);
    s.countScales.push_back(c.batched);
  }
  // Identical layers (and eval_loss's forward) produce identical kernels: the
  // first one generated serves every step. A kernel reporting errors bakes
  // in its step's index, so it only matches itself and still names its op.
  auto [known, isNew] = kernelByKey.try_emplace(kernelKey(k), k.name);
  s.kernel = known->second;
  e->steps.push_back(s);
  if (!isNew) return;
  a.kernels.push_back({k.name, k.grid, k.block, k.sharedBytes, k.checksErrors});
  kernels.push_back(k);
}

LogicalResult Lowering::lowerOp(Operation *op) {
  std::string name = "k" + std::to_string(counter++) + "_" +
                     op->getName().getStringRef().drop_front(3).str();
  int errorCode = static_cast<int>(e->steps.size()) + 1;
  opCounts.clear();

  if (addsDoneByGemms.contains(op)) return success();  // the GEMM's beta = 1 did it
  if (auto reshape = dyn_cast<ReshapeOp>(op)) {  // same bytes, another shape
    buffer[reshape.getResult()] = bufferFor(reshape.getInput());
    return success();
  }
  if (auto t = dyn_cast<TransposeOp>(op); t && foldsIntoGemms(t)) return success();
  if (auto matmul = dyn_cast<MatmulOp>(op)) {
    auto lhs = matmul.getLhs().getType(), rhs = matmul.getRhs().getType();
    auto dtype = dtypeOf(matmul.getResult(), op->getLoc());
    if (failed(dtype)) return failure();
    Value lhsIn = foldedTranspose(matmul.getLhs()), rhsIn = foldedTranspose(matmul.getRhs());
    art::Gemm g;
    g.transA = matmul.getTransposeLhs() != static_cast<bool>(lhsIn);
    g.transB = matmul.getTransposeRhs() != static_cast<bool>(rhsIn);
    auto res = matmul.getResult().getType();
    g.m = res.getDimSize(res.getRank() - 2);
    g.n = res.getDimSize(res.getRank() - 1);
    g.k = lhs.getDimSize(lhs.getRank() - (matmul.getTransposeLhs() ? 2 : 1));
    g.batch = res.getNumElements() / (g.m * g.n);
    g.strideA = g.m * g.k;
    g.strideB = rhs.getRank() == 2 && lhs.getRank() > 2 ? 0 : g.k * g.n;
    g.strideC = g.m * g.n;
    g.dtype = *dtype;
    g.accumulate = accumulatingGemms.contains(matmul.getResult());
    g.f32Result = g.accumulate && g.dtype == art::DType::BF16;  // into the f32 gradient buffer
    if (Value into = g.accumulate ? Value() : accumulationTarget(matmul)) {
      // out = into + A B as one GEMM writing into `into`'s buffer.
      Operation *add = *matmul->getUsers().begin();
      g.accumulate = true;
      buffer[matmul.getResult()] = buffer[add->getResult(0)] = bufferFor(into);
      addsDoneByGemms.insert(add);
    }
    // Which extent is the micro-batch's (BatchAnalysis): the result's rows
    // (or its batch count), or, for a weight gradient, the contraction.
    if (batch.batched(matmul.getResult()))
      g.scale = g.batch > 1 ? art::Gemm::Scale::Batch : art::Gemm::Scale::M;
    else if (batch.batched(matmul.getLhs()) || batch.batched(matmul.getRhs()))
      g.scale = art::Gemm::Scale::K;
    std::vector<int> bufs = {bufferFor(lhsIn ? lhsIn : matmul.getLhs()),
                             bufferFor(rhsIn ? rhsIn : matmul.getRhs()), bufferFor(matmul.getResult())};
    for (int b : bufs) use(b);
    art::Step s;
    s.kind = art::Step::Gemm;
    s.gemm = g;
    s.buffers = bufs;
    s.location = locationOf(op);
    e->steps.push_back(s);
    return success();
  }
  if (auto generator = dyn_cast<KernelGeneratorOpInterface>(op)) {
    SmallVector<Value> values(op->getOperands());
    values.append(op->result_begin(), op->result_end());
    for (Value v : values) {
      Type t = cast<RankedTensorType>(v.getType()).getElementType();
      if (failed(storageType(t)))
        return op->emitError() << "code generation: unsupported element type " << t
                               << " (kernels store f32, bf16, i32 and i1)";
    }
    FailureOr<LoweredOp> lowered = generator.generateKernels(name, context(errorCode));
    if (failed(lowered)) return failure();
    std::vector<int> scratch;
    for (int64_t bytes : lowered->scratchBytes) scratch.push_back(newBuffer(bytes, art::BufferKind::Arena));
    for (Value r : op->getResults()) bufferFor(r);
    for (LoweredStep &step : lowered->steps) {
      std::vector<int> bufs;
      for (const Operand &o : step.operands) bufs.push_back(o.scratch >= 0 ? scratch[o.scratch] : bufferFor(o.value));
      if (step.zero) {
        for (int b : bufs) use(b);
        art::Step s;
        s.kind = art::Step::Zero;
        s.buffers = bufs;
        s.location = locationOf(op);
        e->steps.push_back(s);
      } else {
        addKernelStep(step.kernel, bufs, op);
      }
    }
    return success();
  }
  // Everything else computes one tensor elementwise from its operands; an op
  // that brings its own kernel expressions may compute several, in one kernel
  // (swiglu_grad: both gradients from one read of its three operands).
  if (op->getNumResults() > 1 && isa<KernelExpressionOpInterface>(op)) {
    SmallVector<Value> inputs, outputs(op->getResults());
    for (Value v : op->getOperands())
      if (!llvm::is_contained(inputs, v)) inputs.push_back(v);
    auto k = generateExpressionKernel(name, inputs, outputs, op->getLoc(), context(errorCode));
    if (failed(k)) return failure();
    std::vector<int> bufs;
    for (Value r : outputs) bufs.push_back(bufferFor(r));
    for (Value v : inputs) bufs.push_back(bufferFor(v));
    addKernelStep(*k, bufs, op);
    return success();
  }
  if (op->getNumResults() != 1)
    return op->emitError("code generation: expected a single-result op");
  SmallVector<Value> inputs;
  Value output = op->getResult(0);
  FailureOr<KernelSpec> k = failure();
  if (auto fusion = dyn_cast<FusionOp>(op)) {
    Block &body = fusion.getBody().front();
    inputs.assign(body.args_begin(), body.args_end());
    k = generateExpressionKernel(name, inputs, cast<YieldOp>(body.getTerminator()).getValues()[0],
                                 op->getLoc(), context(errorCode));
    inputs.assign(fusion.getInputs().begin(), fusion.getInputs().end());
  } else {
    for (Value v : op->getOperands())  // each distinct operand once
      if (!llvm::is_contained(inputs, v)) inputs.push_back(v);
    k = generateExpressionKernel(name, inputs, output, op->getLoc(), context(errorCode));
  }
  if (failed(k)) return failure();
  std::vector<int> bufs = {bufferFor(output)};
  for (Value v : inputs) bufs.push_back(bufferFor(v));
  addKernelStep(*k, bufs, op);
  return success();
}

/// First fit by offset among the allocations alive at each buffer's first
/// step: buffers are placed in order of their first use.
void Lowering::plan(int firstBuffer) {
  std::vector<int> order;
  for (int b = firstBuffer; b < static_cast<int>(a.buffers.size()); ++b)
    if (a.buffers[b].kind == art::BufferKind::Arena) order.push_back(b);
  std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return firstStep[x] < firstStep[y]; });
  std::vector<int> live;  // sorted by offset
  int64_t peak = 0, total = 0;
  for (int b : order) {
    live.erase(std::remove_if(live.begin(), live.end(), [&](int o) { return lastStep[o] < firstStep[b]; }),
               live.end());
    int64_t size = (a.buffers[b].bytes + kAlignment - 1) / kAlignment * kAlignment, offset = 0;
    total += size;
    for (int o : live) {
      if (offset + size <= a.buffers[o].offset) break;
      offset = std::max(offset, a.buffers[o].offset + (a.buffers[o].bytes + kAlignment - 1) / kAlignment * kAlignment);
    }
    a.buffers[b].offset = offset;
    peak = std::max(peak, offset + size);
    live.insert(std::upper_bound(live.begin(), live.end(), b,
                                 [&](int x, int y) { return a.buffers[x].offset < a.buffers[y].offset; }),
                b);
  }
  e->arenaBytes = peak;
  e->unplannedBytes = total;
  a.arenaBytes = std::max(a.arenaBytes, peak);
}

/// Parameters are bound to the flat buffer by name (shared by every entry
/// point); other arguments are the entry point's inputs.
LogicalResult Lowering::bindArguments(func::FuncOp func) {
  for (BlockArgument arg : func.getBody().front().getArguments()) {
    unsigned i = arg.getArgNumber();
    auto dtype = dtypeOf(arg, func.getLoc());
    if (failed(dtype)) return failure();
    art::Tensor t;
    auto type = cast<RankedTensorType>(arg.getType());
    t.shape.assign(type.getShape().begin(), type.getShape().end());
    t.dtype = *dtype;
    if (auto p = func.getArgAttrOfType<StringAttr>(i, TLDialect::kParamAttrName)) {
      t.name = p.str();
      auto known = paramIndex.find(t.name);
      if (known != paramIndex.end()) {
        const art::Tensor &q = a.params[known->second];
        if (q.shape != t.shape || q.dtype != t.dtype)
          return func.emitError("code generation: parameter '") << t.name << "' differs between entry points";
        buffer[arg] = q.buffer;
        continue;
      }
      if (!a.params.empty() && a.params[0].dtype != t.dtype)
        return func.emitError("code generation: parameter '") << t.name << "' is "
                                                               << art::dtypeName(t.dtype) << ", the others "
                                                               << art::dtypeName(a.params[0].dtype)
                                                               << ": the flat buffer holds one dtype";
      t.buffer = newBuffer(bytesOf(arg), art::BufferKind::Param, a.params.size());
      // The model's policy (the DSL always states it); IR written by hand
      // without one gets the Llama default for its rank.
      auto init = func.getArgAttrOfType<DictionaryAttr>(i, TLDialect::kInitAttrName);
      auto decay = func.getArgAttrOfType<BoolAttr>(i, TLDialect::kDecayAttrName);
      bool gain = t.shape.size() == 1;
      if (!init)
        t.init = gain ? nlohmann::json{{"kind", "ones"}} : nlohmann::json{{"kind", "normal"}, {"std", 0.02}};
      else if (auto std = init.getAs<FloatAttr>("std"))
        t.init = {{"kind", init.getAs<StringAttr>("kind").str()}, {"std", std.getValueAsDouble()}};
      else
        t.init = {{"kind", init.getAs<StringAttr>("kind").str()}};
      t.decay = decay ? decay.getValue() : !gain;
      paramIndex[t.name] = static_cast<int>(a.params.size());
      a.params.push_back(t);
    } else {
      auto in = func.getArgAttrOfType<StringAttr>(i, TLDialect::kInputAttrName);
      t.name = in ? in.str() : "arg" + std::to_string(i);
      t.buffer = newBuffer(bytesOf(arg), art::BufferKind::Input, e->inputs.size());
      e->inputs.push_back(t);
    }
    buffer[arg] = t.buffer;
  }
  return success();
}

/// The value a GEMM can add itself into (beta = 1) instead of an add kernel:
/// its only reader is `add(into, gemm)` and nothing else reads `into`, an
/// arena tensor of the same type already computed that no other value shares
/// (no reshape of another) and the GEMM does not read. The backward's sums of
/// the input gradients of projections that share an input (q, k, v; gate,
/// up) become chains of such GEMMs.
Value Lowering::accumulationTarget(MatmulOp matmul) {
  Value result = matmul.getResult();
  if (!result.hasOneUse() || buffer.count(result)) return {};
  auto add = dyn_cast<AddOp>(*result.getUsers().begin());
  if (!add || add->getBlock() != matmul->getBlock() || buffer.count(add.getResult()) ||
      add.getResult().getType() != result.getType())
    return {};
  Value into = add.getLhs() == result ? add.getRhs() : add.getLhs();
  Operation *def = into.getDefiningOp();
  // Computed by now: before the GEMM, or an add an earlier GEMM already did.
  bool computed = def && def->getBlock() == matmul->getBlock() &&
                  (def->isBeforeInBlock(matmul) || addsDoneByGemms.contains(def));
  if (!computed || isa<ReshapeOp>(def) || !into.hasOneUse() || into.getType() != result.getType())
    return {};
  auto it = buffer.find(into);
  if (it == buffer.end() || a.buffers[it->second].kind != art::BufferKind::Arena) return {};
  for (Value in : {Value(matmul.getLhs()), Value(matmul.getRhs()), foldedTranspose(matmul.getLhs()), foldedTranspose(matmul.getRhs())})
    if (in && buffer.count(in) && buffer.lookup(in) == it->second) return {};
  return into;
}

/// Outputs get buffers the runtime owns, their producers writing straight
/// there; gradients are added into the flat gradient buffer.
LogicalResult Lowering::bindResults(func::FuncOp func) {
  auto ret = cast<func::ReturnOp>(func.getBody().front().getTerminator());
  DenseMap<Value, int> outputOf;
  for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
    Value root = traceReturned(v).root;
    auto dtype = dtypeOf(v, ret.getLoc());
    if (failed(dtype)) return failure();
    if (auto g = func.getResultAttrOfType<StringAttr>(i, TLDialect::kGradAttrName)) {
      auto p = paramIndex.find(g.str());
      if (p == paramIndex.end() || a.params[p->second].numel() != cast<RankedTensorType>(v.getType()).getNumElements())
        return ret.emitError("code generation: gradient of unknown or differently shaped parameter '") << g.str() << "'";
      if (!gradBuffer.count(p->second))
        gradBuffer[p->second] = newBuffer(a.params[p->second].numel() * 4, art::BufferKind::Grad, p->second);
      int grad = gradBuffer[p->second];
      // A GEMM whose result is only this gradient adds into it itself (a
      // bf16 one with an f32 result).
      if (isGradientOfItsGemm(v) && !accumulatingGemms.contains(root) && !buffer.count(root)) {
        accumulatingGemms.insert(root);
        buffer[root] = grad;
      } else {
        pendingGrads[root].push_back(grad);
      }
      continue;
    }
    art::Tensor t;
    auto type = cast<RankedTensorType>(v.getType());
    t.shape.assign(type.getShape().begin(), type.getShape().end());
    t.dtype = *dtype;
    auto o = func.getResultAttrOfType<StringAttr>(i, TLDialect::kOutputAttrName);
    t.name = o ? o.str() : "result" + std::to_string(i);
    t.buffer = newBuffer(bytesOf(v), art::BufferKind::Output, e->outputs.size());
    e->outputs.push_back(t);
    if (!isa<BlockArgument>(root) && !outputOf.count(root) && !accumulatingGemms.contains(root) &&
        !buffer.count(root)) {
      outputOf[root] = t.buffer;
      buffer[root] = t.buffer;
    }
  }
  return success();
}

/// grad += root for every gradient `root` is (emitted right after its
/// producer, so the root's arena space is free again at once).
LogicalResult Lowering::accumulateGradients(Value root, Location loc, Operation *op) {
  auto it = pendingGrads.find(root);
  if (it == pendingGrads.end()) return success();
  auto dtype = dtypeOf(root, loc);
  if (failed(dtype) || *dtype == art::DType::I32)
    return emitError(loc) << "code generation: a gradient must be f32 or bf16";
  int64_t n = cast<RankedTensorType>(root.getType()).getNumElements();
  for (int grad : it->second) {  // one kernel each: names are unique
    std::string name = "k" + std::to_string(counter++) + "_accumulate_grad";
    addKernelStep(accumulateKernel(name, n, *dtype == art::DType::BF16 ? "uint16_t" : "float"),
                  {grad, bufferFor(root)}, op);
  }
  pendingGrads.erase(it);
  return success();
}

LogicalResult Lowering::lowerEntry(const EntryFunction &entry, LoweringStats &stats) {
  func::FuncOp func = entry.func;
  a.entries.push_back({});
  e = &a.entries.back();
  e->name = entry.name;
  // The training step, the loss and the logits run any micro-batch up to
  // the compiled one; the decode step keeps its shapes.
  bool resizable = entry.name == art::kTrainStep || entry.name == art::kEvalLoss || entry.name == art::kForwardLogits;
  batch = resizable ? BatchAnalysis::run(entry.func) : BatchAnalysis();
  e->batch = batch.compiledBatch();
  buffer.clear();
  pendingGrads.clear();
  accumulatingGemms.clear();
  addsDoneByGemms.clear();
  int firstBuffer = static_cast<int>(a.buffers.size());
  if (failed(bindArguments(func)) || failed(bindResults(func))) return failure();
  Block &body = func.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  for (BlockArgument arg : body.getArguments())
    if (failed(accumulateGradients(arg, ret.getLoc(), ret))) return failure();
  for (Operation &op : body.without_terminator()) {
    if (isa<FusionOp>(op)) ++stats.fusionGroups;
    else if (isa<KernelGeneratorOpInterface>(op)) ++stats.fusedOps;
    if (failed(lowerOp(&op))) return failure();
    for (Value r : op.getResults())
      if (failed(accumulateGradients(r, op.getLoc(), &op))) return failure();
  }
  // Outputs not written in place (parameters, repeated values): copy them.
  size_t output = 0;
  for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
    if (func.getResultAttrOfType<StringAttr>(i, TLDialect::kGradAttrName)) continue;
    int out = e->outputs[output++].buffer, src = bufferFor(v);
    if (src == out) continue;
    opCounts.clear();
    auto k = generateExpressionKernel("k" + std::to_string(counter++) + "_copy", {v}, v, ret.getLoc(), context(0));
    if (failed(k)) return failure();
    addKernelStep(*k, {out, src}, ret);
  }
  plan(firstBuffer);
  for (const art::Step &s : e->steps) stats.gemms += s.kind == art::Step::Gemm;
  return success();
}

FailureOr<art::Artifact> Lowering::run(ArrayRef<EntryFunction> entries, LoweringStats &stats) {
  for (const EntryFunction &entry : entries)
    if (failed(lowerEntry(entry, stats))) return failure();
  art::assignFlatLayout(a);
  planCommunication(a);
  kernels.push_back(adamwKernel(a.paramDType() == art::DType::BF16 ? "uint16_t" : "float", a.flatElements));
  kernels.push_back(sumSqPartialKernel());
  kernels.push_back(sumSqFinalKernel());
  for (size_t i = kernels.size() - 3; i < kernels.size(); ++i)
    a.kernels.push_back({kernels[i].name, kernels[i].grid, kernels[i].block, kernels[i].sharedBytes, false});
  a.cpuSource = emitCpu(kernels);
  a.cudaSource = emitCuda(kernels);
  func::FuncOp func = entries.front().func;
  if (auto model = func->getAttrOfType<DictionaryAttr>(TLDialect::kModelAttrName))
    for (NamedAttribute f : model) {
      if (auto i = dyn_cast<IntegerAttr>(f.getValue())) a.config[f.getName().str()] = i.getInt();
      else if (auto fl = dyn_cast<FloatAttr>(f.getValue())) a.config[f.getName().str()] = fl.getValueAsDouble();
      else if (auto s = dyn_cast<StringAttr>(f.getValue())) a.config[f.getName().str()] = s.str();
    }
  stats.kernels = static_cast<int>(kernels.size());
  return a;
}

} // namespace

FailureOr<art::Artifact> lowerToArtifact(ArrayRef<EntryFunction> entries, LoweringStats &stats) {
  if (!entries.empty()) attachKernelInterfaces(*entries.front().func->getContext());
  for (const EntryFunction &e : entries)
    regroupRepeatedReductions(e.func); // no kernel redoes a reduction per element
  return Lowering().run(entries, stats);
}

FailureOr<art::Artifact> lowerToArtifact(func::FuncOp func, LoweringStats &stats) {
  return lowerToArtifact({EntryFunction{art::kTrainStep, func}}, stats);
}

} // namespace mlir::tl::codegen
