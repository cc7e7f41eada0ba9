//===- FusionCheck.cpp - translation validation of each fusion ----------===//
#include "compiler/Verify/FusionCheck.h"

#include "compiler/Verify/Compare.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/IRMapping.h"

#include <cstdlib>

namespace mlir::tl::validation {
namespace {

/// The ops of `block` that `outputs` depend on, stopping at `stops`, at
/// block arguments and at values from other blocks, in block order.
SmallVector<Operation *> sliceBetween(Block *block, ArrayRef<Value> outputs,
                                      const DenseSet<Value> &stops) {
  DenseSet<Operation *> seen;
  SmallVector<Operation *> ops;
  SmallVector<Value> work(outputs.begin(), outputs.end());
  while (!work.empty()) {
    Value v = work.pop_back_val();
    Operation *def = v.getDefiningOp();
    if (!def || def->getBlock() != block || stops.contains(v) || !seen.insert(def).second)
      continue;
    ops.push_back(def);
    for (Value operand : def->getOperands()) work.push_back(operand);
  }
  llvm::sort(ops, [](Operation *a, Operation *b) { return a->isBeforeInBlock(b); });
  return ops;
}

/// A function `name` in `module` computing `outputs` by clones of `ops`;
/// its arguments are `inputs`, then any other value the ops read from
/// outside (appended to `inputs`).
func::FuncOp outline(ModuleOp module, StringRef name, ArrayRef<Operation *> ops,
                     SmallVector<Value> &inputs, ArrayRef<Value> outputs) {
  DenseSet<Operation *> inside(ops.begin(), ops.end());
  for (Operation *op : ops)
    for (Value v : op->getOperands())
      if ((!v.getDefiningOp() || !inside.contains(v.getDefiningOp())) &&
          !llvm::is_contained(inputs, v))
        inputs.push_back(v);
  OpBuilder b(module.getBodyRegion());
  b.setInsertionPointToEnd(module.getBody());
  SmallVector<Type> argTypes, resultTypes;
  for (Value v : inputs) argTypes.push_back(v.getType());
  for (Value v : outputs) resultTypes.push_back(v.getType());
  auto func = b.create<func::FuncOp>(module.getLoc(), name, b.getFunctionType(argTypes, resultTypes));
  Block *body = func.addEntryBlock();
  IRMapping map;
  for (auto [v, arg] : llvm::zip(inputs, body->getArguments())) map.map(v, arg);
  b.setInsertionPointToStart(body);
  for (Operation *op : ops) b.clone(*op, map);
  SmallVector<Value> results;
  for (Value v : outputs) results.push_back(map.lookupOrDefault(v));
  b.create<func::ReturnOp>(module.getLoc(), results);
  return func;
}

/// Records what a rewrite on the copy creates and replaces.
struct Recorder : RewriterBase::Listener {
  SmallVector<Operation *> created;
  SmallVector<std::pair<Operation *, SmallVector<Value>>> replaced;
  void notifyOperationInserted(Operation *op, OpBuilder::InsertPoint) override {
    created.push_back(op);
  }
  void notifyOperationErased(Operation *op) override { llvm::erase(created, op); }
  void notifyOperationReplaced(Operation *op, ValueRange values) override {
    replaced.push_back({op, SmallVector<Value>(values.begin(), values.end())});
  }
};

} // namespace

bool RegionChecker::check(Operation *root, StringRef pass, RewriteCopy rewrite) {
  ++fusions;
  MLIRContext *ctx = root->getContext();
  // 1. A copy of everything the root depends on, rewritten the same way.
  SmallVector<Operation *> slice =
      sliceBetween(root->getBlock(), SmallVector<Value>(root->getResults()), {});
  OwningOpRef<ModuleOp> scratch = ModuleOp::create(root->getLoc());
  SmallVector<Value> copyInputs;
  func::FuncOp copy =
      outline(*scratch, "copy", slice, copyInputs, SmallVector<Value>(root->getResults()));
  // Copied op -> original op, in order.
  DenseMap<Operation *, Operation *> original;
  for (auto [c, o] : llvm::zip(copy.getBody().front().without_terminator(), slice))
    original[&c] = o;
  auto originalValue = [&](Value v) -> Value {
    if (auto arg = dyn_cast<BlockArgument>(v)) return copyInputs[arg.getArgNumber()];
    Operation *o = original.lookup(v.getDefiningOp());
    return o ? o->getResult(cast<OpResult>(v).getResultNumber()) : Value();
  };
  Operation *copyRoot = copy.getBody().front().getTerminator()->getOperand(0).getDefiningOp();
  PatternRewriter rewriter(ctx);
  Recorder recorder;
  rewriter.setListener(&recorder);
  rewriter.setInsertionPoint(copyRoot);
  if (!rewrite(copyRoot, rewriter)) {
    ++skipped;
    return true;
  }
  // 2. The fused side: the created ops, reading values that existed before.
  DenseSet<Operation *> created(recorder.created.begin(), recorder.created.end());
  SmallVector<Value> leaves, outputs, fusedOutputs;
  SmallVector<Operation *> fusedOps;
  for (Operation *op : recorder.created) {
    fusedOps.push_back(op);
    for (Value v : op->getOperands())
      if ((!v.getDefiningOp() || !created.contains(v.getDefiningOp())) &&
          !llvm::is_contained(leaves, v))
        leaves.push_back(v);
  }
  for (auto &[op, values] : recorder.replaced) {
    Operation *o = original.lookup(op);
    if (!o) {
      ++skipped;
      return true;
    }
    for (auto [i, v] : llvm::enumerate(values)) {
      outputs.push_back(o->getResult(i));
      fusedOutputs.push_back(v);
    }
  }
  for (Value v : fusedOutputs) // a replacement by a value that existed before
    if ((!v.getDefiningOp() || !created.contains(v.getDefiningOp())) &&
        !llvm::is_contained(leaves, v))
      leaves.push_back(v);
  llvm::sort(fusedOps, [](Operation *a, Operation *b) { return a->isBeforeInBlock(b); });
  // 3. @before (the original ops back to the leaves) and @after.
  SmallVector<Value> inputs;
  DenseSet<Value> stops;
  for (Value leaf : leaves) {
    Value v = originalValue(leaf);
    if (!v) {
      ++skipped;
      return true;
    }
    inputs.push_back(v);
    stops.insert(v);
  }
  size_t fusedArity = inputs.size();
  OwningOpRef<ModuleOp> region = ModuleOp::create(root->getLoc());
  func::FuncOp before =
      outline(*region, "before", sliceBetween(root->getBlock(), outputs, stops), inputs, outputs);
  // Arguments past `fusedArity` are read by the original only.
  OpBuilder b(ctx);
  b.setInsertionPointToEnd(region->getBody());
  auto after = b.create<func::FuncOp>(root->getLoc(), "after", before.getFunctionType());
  Block *body = after.addEntryBlock();
  IRMapping map;
  for (size_t i = 0; i < fusedArity; ++i) map.map(leaves[i], body->getArgument(i));
  b.setInsertionPointToStart(body);
  for (Operation *op : fusedOps) b.clone(*op, map);
  SmallVector<Value> results;
  for (Value v : fusedOutputs) results.push_back(map.lookupOrDefault(v));
  b.create<func::ReturnOp>(root->getLoc(), results);

  // 4. Compare, once per distinct region.
  std::string key = pass.str() + "\n" + printWithoutLocations(*region);
  if (tooLarge.contains(key)) {
    ++skipped;
    return true;
  }
  if (auto it = verdicts.find(key); it != verdicts.end()) {
    it->second ? ++checked : ++mismatches;
    if (!it->second) root->emitError() << pass << ": this fusion changes the numbers (as an identical region did)";
    return it->second;
  }
  int64_t size = evaluationSize(before) + evaluationSize(after);
  if (size > budget) {
    ++skipped;
    root->emitWarning() << pass << ": --verify-fusion did not check this fusion: evaluating its "
                        << "region holds " << size << " tensor elements, over the budget of "
                        << budget << " (TLC_VERIFY_FUSION_ELEMENTS)";
    tooLarge.insert(key);
    return true;
  }
  ++distinct;
  std::string error;
  FailureOr<Comparison> c = compareOnRandomInputs(before, after, /*seed=*/0x5eed + distinct, error,
                                                  toleranceFor(before));
  if (failed(c)) {
    ++skipped;
    root->emitWarning() << pass << ": --verify-fusion could not evaluate this region: " << error;
    return true;
  }
  verdicts[key] = c->equal;
  if (c->equal) {
    ++checked;
    return true;
  }
  ++mismatches;
  root->emitError() << pass << ": this fusion changes the numbers on random inputs (" << c->detail
                    << "); it is not made. The region before and after:\n"
                    << printWithoutLocations(*region, /*elide=*/true);
  return false;
}

RegionChecker::RegionChecker() : budget(int64_t(1) << 26) {
  if (const char *e = std::getenv("TLC_VERIFY_FUSION_ELEMENTS")) budget = std::atoll(e);
}

std::string RegionChecker::summary() const {
  std::string s = "verify-fusion: " + std::to_string(checked) + " of " + std::to_string(fusions) +
                  " fusions checked equal on random inputs (" + std::to_string(distinct) +
                  " distinct regions evaluated)";
  if (skipped)
    s += ", " + std::to_string(skipped) +
         " not checked (regions too large to evaluate on the host: check a smaller "
         "configuration of the same model, e.g. --set seq=..,micro_batch=1)";
  if (mismatches) s += ", " + std::to_string(mismatches) + " MISMATCHES (refused)";
  return s;
}

LogicalResult runWithFusionChecking(PassManager &pm, ModuleOp module, bool verify) {
  if (!verify) return pm.run(module);
  RegionChecker checker;
  ScopedFusionChecking scope(&checker);
  LogicalResult result = pm.run(module);
  llvm::errs() << checker.summary() << "\n";
  return result;
}

} // namespace mlir::tl::validation
