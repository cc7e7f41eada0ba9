//===- Lowering.cpp - a training step to a .tlx artifact -----------------===//
#include "compiler/Codegen/Lowering.h"

#include "compiler/Codegen/ExprGen.h"
#include "compiler/Codegen/FusedKernels.h"
#include "compiler/Passes/Passes.h"
#include "dialects/tl/IR/TlOps.h"

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

class Lowering {
public:
  explicit Lowering(func::FuncOp func) : func(func) {}
  FailureOr<art::Artifact> run(LoweringStats &stats);

private:
  int newBuffer(int64_t bytes, art::BufferKind kind, int64_t index = 0) {
    a.buffers.push_back({bytes, kind, index});
    firstStep.push_back(static_cast<int>(a.steps.size()));
    lastStep.push_back(static_cast<int>(a.steps.size()));
    return static_cast<int>(a.buffers.size()) - 1;
  }
  int bufferFor(Value v) {
    auto it = buffer.find(v);
    if (it != buffer.end()) return it->second;
    int b = newBuffer(bytesOf(v), art::BufferKind::Arena);
    buffer[v] = b;
    return b;
  }
  void use(int b) { lastStep[b] = static_cast<int>(a.steps.size()); }
  LogicalResult lowerOp(Operation *op);
  void addKernelStep(const KernelSpec &k, std::vector<int> buffers, Operation *op);
  void plan();

  func::FuncOp func;
  art::Artifact a;
  std::vector<KernelSpec> kernels;
  DenseMap<Value, int> buffer;
  std::vector<int> firstStep, lastStep;
  int counter = 0;
};

void Lowering::addKernelStep(const KernelSpec &k, std::vector<int> buffers, Operation *op) {
  for (int b : buffers) use(b);
  art::Step s;
  s.kind = art::Step::Kernel;
  s.kernel = k.name;
  s.buffers = std::move(buffers);
  s.location = locationOf(op);
  a.steps.push_back(s);
  a.kernels.push_back({k.name, k.grid, k.block, k.sharedBytes, k.checksErrors});
  kernels.push_back(k);
}

LogicalResult Lowering::lowerOp(Operation *op) {
  std::string name = "k" + std::to_string(counter++) + "_" +
                     op->getName().getStringRef().drop_front(3).str();
  int errorCode = static_cast<int>(a.steps.size()) + 1;

  if (auto reshape = dyn_cast<ReshapeOp>(op)) {  // same bytes, another shape
    buffer[reshape.getResult()] = bufferFor(reshape.getInput());
    return success();
  }
  if (auto matmul = dyn_cast<MatmulOp>(op)) {
    auto lhs = matmul.getLhs().getType(), rhs = matmul.getRhs().getType();
    auto dtype = dtypeOf(matmul.getResult(), op->getLoc());
    if (failed(dtype)) return failure();
    art::Gemm g;
    g.transA = matmul.getTransposeLhs();
    g.transB = matmul.getTransposeRhs();
    auto res = matmul.getResult().getType();
    g.m = res.getDimSize(res.getRank() - 2);
    g.n = res.getDimSize(res.getRank() - 1);
    g.k = lhs.getDimSize(lhs.getRank() - (g.transA ? 2 : 1));
    g.batch = res.getNumElements() / (g.m * g.n);
    g.strideA = g.m * g.k;
    g.strideB = rhs.getRank() == 2 && lhs.getRank() > 2 ? 0 : g.k * g.n;
    g.strideC = g.m * g.n;
    g.dtype = *dtype;
    std::vector<int> bufs = {bufferFor(matmul.getLhs()), bufferFor(matmul.getRhs()),
                             bufferFor(matmul.getResult())};
    for (int b : bufs) use(b);
    art::Step s;
    s.kind = art::Step::Gemm;
    s.gemm = g;
    s.buffers = bufs;
    s.location = locationOf(op);
    a.steps.push_back(s);
    return success();
  }
  if (hasKernelGenerator(op)) {
    FailureOr<LoweredOp> lowered = generateKernels(op, name, errorCode);
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
        a.steps.push_back(s);
      } else {
        addKernelStep(step.kernel, bufs, op);
      }
    }
    return success();
  }
  // Everything else computes one tensor elementwise from its operands; an op
  // that brings its own kernel expressions may compute several, one kernel each.
  if (op->getNumResults() > 1 && isa<KernelExpressionOpInterface>(op)) {
    SmallVector<Value> inputs;
    for (Value v : op->getOperands())
      if (!llvm::is_contained(inputs, v)) inputs.push_back(v);
    for (Value r : op->getResults()) {
      auto k = generateExpressionKernel(name + "_" + std::to_string(cast<OpResult>(r).getResultNumber()),
                                        inputs, r, op->getLoc());
      if (failed(k)) return failure();
      std::vector<int> bufs = {bufferFor(r)};
      for (Value v : inputs) bufs.push_back(bufferFor(v));
      addKernelStep(*k, bufs, op);
    }
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
                                 op->getLoc());
    inputs.assign(fusion.getInputs().begin(), fusion.getInputs().end());
  } else {
    for (Value v : op->getOperands())  // each distinct operand once
      if (!llvm::is_contained(inputs, v)) inputs.push_back(v);
    k = generateExpressionKernel(name, inputs, output, op->getLoc());
  }
  if (failed(k)) return failure();
  std::vector<int> bufs = {bufferFor(output)};
  for (Value v : inputs) bufs.push_back(bufferFor(v));
  addKernelStep(*k, bufs, op);
  return success();
}

/// First fit by offset among the allocations alive at each buffer's first
/// step: buffers are placed in order of their first use.
void Lowering::plan() {
  std::vector<int> order;
  for (int b = 0; b < static_cast<int>(a.buffers.size()); ++b)
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
  a.arenaBytes = peak;
  a.unplannedBytes = total;
}

FailureOr<art::Artifact> Lowering::run(LoweringStats &stats) {
  Block &body = func.getBody().front();
  for (BlockArgument arg : body.getArguments()) {
    unsigned i = arg.getArgNumber();
    auto dtype = dtypeOf(arg, func.getLoc());
    if (failed(dtype)) return failure();
    art::Tensor t;
    auto type = cast<RankedTensorType>(arg.getType());
    t.shape.assign(type.getShape().begin(), type.getShape().end());
    t.dtype = *dtype;
    if (auto p = func.getArgAttrOfType<StringAttr>(i, TLDialect::kParamAttrName)) {
      t.name = p.str();
      t.buffer = newBuffer(bytesOf(arg), art::BufferKind::Param, a.params.size());
      bool norm = t.shape.size() == 1;
      t.init = norm ? nlohmann::json{{"kind", "ones"}} : nlohmann::json{{"kind", "normal"}, {"std", 0.02}};
      a.params.push_back(t);
    } else {
      auto in = func.getArgAttrOfType<StringAttr>(i, TLDialect::kInputAttrName);
      t.name = in ? in.str() : "arg" + std::to_string(i);
      t.buffer = newBuffer(bytesOf(arg), art::BufferKind::Input, a.inputs.size());
      a.inputs.push_back(t);
    }
    buffer[arg] = t.buffer;
  }
  // Results get buffers the runtime owns; their producers write straight there.
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  DenseMap<Value, int> outputOf;
  for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
    Value root = v;
    while (auto r = root.getDefiningOp<ReshapeOp>()) root = r.getInput();
    auto dtype = dtypeOf(v, ret.getLoc());
    if (failed(dtype)) return failure();
    art::Tensor t;
    auto type = cast<RankedTensorType>(v.getType());
    t.shape.assign(type.getShape().begin(), type.getShape().end());
    t.dtype = *dtype;
    auto g = func.getResultAttrOfType<StringAttr>(i, TLDialect::kGradAttrName);
    auto o = func.getResultAttrOfType<StringAttr>(i, TLDialect::kOutputAttrName);
    t.name = g ? "grad:" + g.str() : o ? o.str() : "result" + std::to_string(i);
    t.buffer = newBuffer(bytesOf(v), art::BufferKind::Output, a.outputs.size());
    a.outputs.push_back(t);
    if (!isa<BlockArgument>(root) && !outputOf.count(root)) {
      outputOf[root] = t.buffer;
      buffer[root] = t.buffer;
    }
  }
  for (Operation &op : body.without_terminator()) {
    if (isa<FusionOp>(op)) ++stats.fusionGroups;
    else if (hasKernelGenerator(&op)) ++stats.fusedOps;
    if (failed(lowerOp(&op))) return failure();
  }
  // Results not written in place (parameters, repeated values): copy them.
  for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
    int out = a.outputs[i].buffer, src = bufferFor(v);
    if (src == out) continue;
    auto k = generateExpressionKernel("k" + std::to_string(counter++) + "_copy", {v}, v, ret.getLoc());
    if (failed(k)) return failure();
    addKernelStep(*k, {out, src}, ret);
  }
  plan();
  a.cpuSource = emitCpu(kernels);
  a.cudaSource = emitCuda(kernels);
  if (auto model = func->getAttrOfType<DictionaryAttr>(TLDialect::kModelAttrName))
    for (NamedAttribute f : model) {
      if (auto i = dyn_cast<IntegerAttr>(f.getValue())) a.config[f.getName().str()] = i.getInt();
      else if (auto fl = dyn_cast<FloatAttr>(f.getValue())) a.config[f.getName().str()] = fl.getValueAsDouble();
      else if (auto s = dyn_cast<StringAttr>(f.getValue())) a.config[f.getName().str()] = s.str();
    }
  for (const art::Step &s : a.steps) stats.gemms += s.kind == art::Step::Gemm;
  stats.kernels = static_cast<int>(kernels.size());
  return a;
}

} // namespace

FailureOr<art::Artifact> lowerToArtifact(func::FuncOp func, LoweringStats &stats) {
  regroupRepeatedReductions(func); // no kernel redoes a reduction per element
  return Lowering(func).run(stats);
}

} // namespace mlir::tl::codegen
