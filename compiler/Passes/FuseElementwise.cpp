//===- FuseElementwise.cpp - tl-fuse-elementwise: tl.fusion groups -------===//
//
// Groups are grown backwards from a root (the last op of a chain): a
// producer joins when every user of its results is already in the group, so
// each group has one output and nothing it computes is needed elsewhere.
// A producer with outside users is recomputed inside only when it is cheap
// (a constant or an iota, no operands); anything else stays outside and
// roots a group of its own: the cost rule that never duplicates exp, log,
// divisions or reductions.
//
// Each work item of a group's kernel computes one element of the root, so
// anything upstream of an expanding broadcast is evaluated once per element
// of the broadcast's result. A reduction there would redo its whole loop for
// every such element (softmax's row sum once per logit: O(V^2) per row), so
// a reduction joins a group only where each of its elements is needed once;
// otherwise it roots a group of its own and is materialised.
//
//===----------------------------------------------------------------------===//
#include "compiler/Passes/Matchers.h"
#include "compiler/Passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/IRMapping.h"

namespace mlir::tl {
#define GEN_PASS_DEF_TLFUSEELEMENTWISE
#include "compiler/Passes/Passes.h.inc"
} // namespace mlir::tl

using namespace mlir;
using namespace mlir::tl;

namespace {

/// `x + gemm` with the GEMM read by nothing else: the lowering lets the GEMM
/// add itself into x (beta = 1), which no group can beat.
bool isGemmAccumulation(Operation *op) {
  auto add = dyn_cast<AddOp>(op);
  return add && llvm::any_of(add->getOperands(), [](Value v) { return v.getDefiningOp<MatmulOp>() && v.hasOneUse(); });
}

bool isFusible(Operation *op) {
  if (op->getNumResults() != 1) return false; // a group yields one value
  if (isGemmAccumulation(op)) return false;
  return op->hasTrait<OpTrait::Elementwise>() ||
         isa<BroadcastOp, ReshapeOp, ReduceSumOp, ReduceMaxOp, ReduceMeanOp, ConstantOp,
             IotaOp>(op);
}

/// Cheap enough to recompute in every group that needs it.
bool isCheap(Operation *op) { return isa<ConstantOp, IotaOp>(op); }

/// Moves data or does arithmetic worth a kernel (not only shape plumbing).
bool isCompute(Operation *op) {
  return !isa<BroadcastOp, ReshapeOp, ConstantOp, IotaOp>(op);
}

struct Group {
  SmallVector<Operation *> ops; // in block order once formed
  Operation *root;
};

bool isReduction(Operation *op) { return isa<ReduceSumOp, ReduceMaxOp, ReduceMeanOp>(op); }

/// A broadcast whose result has more elements than its operand.
bool expands(Operation *op) {
  auto b = dyn_cast<BroadcastOp>(op);
  return b && b.getResult().getType().getNumElements() > b.getInput().getType().getNumElements();
}

/// Grows the group rooted at `root`; `owner` maps ops to their group index.
Group grow(Operation *root, int index, DenseMap<Operation *, int> &owner,
           const match::FusionReport &report) {
  Group g{{root}, root};
  owner[root] = index;
  // Ops of the group evaluated more than once per element of their result
  // (downstream of an expanding broadcast). Final when an op joins: all its
  // users are in the group by then.
  DenseSet<Operation *> repeated;
  SmallVector<Operation *> worklist{root};
  while (!worklist.empty()) {
    Operation *op = worklist.pop_back_val();
    for (Value operand : op->getOperands()) {
      Operation *producer = operand.getDefiningOp();
      if (!producer || !isFusible(producer) || owner.count(producer) ||
          producer->getBlock() != root->getBlock())
        continue;
      bool allUsersInside = llvm::all_of(producer->getUsers(), [&](Operation *user) {
        auto it = owner.find(user);
        return it != owner.end() && it->second == index;
      });
      if (!allUsersInside) continue; // revisited when its last user joins
      bool isRepeated = llvm::any_of(producer->getUsers(), [&](Operation *user) {
        return repeated.contains(user) || expands(user);
      });
      if (isRepeated && isReduction(producer)) {
        report.refused(producer, "part of the group rooted at '" +
                                     root->getName().getStringRef() + "'",
                       "its result is broadcast, so every element would redo the reduction; "
                       "it is computed once by a group of its own");
        continue;
      }
      if (isRepeated) repeated.insert(producer);
      owner[producer] = index;
      g.ops.push_back(producer);
      worklist.push_back(producer);
    }
  }
  llvm::sort(g.ops, [](Operation *a, Operation *b) { return a->isBeforeInBlock(b); });
  return g;
}

/// Replaces the group's ops by one tl.fusion placed at the root.
void materialize(Group &g) {
  DenseSet<Operation *> inside(g.ops.begin(), g.ops.end());
  SmallVector<Value> inputs;
  SmallVector<Operation *> clones; // cheap producers recomputed inside
  DenseSet<Value> seen;
  DenseSet<Operation *> cloned;
  for (Operation *op : g.ops)
    for (Value v : op->getOperands()) {
      Operation *def = v.getDefiningOp();
      if (def && inside.contains(def)) continue;
      if (def && isCheap(def)) {
        if (cloned.insert(def).second) clones.push_back(def);
      } else if (seen.insert(v).second) {
        inputs.push_back(v);
      }
    }
  OpBuilder b(g.root);
  auto fusion = b.create<FusionOp>(g.root->getLoc(), g.root->getResultTypes(), inputs);
  Block *body = b.createBlock(&fusion.getBody());
  IRMapping map;
  for (Value v : inputs) map.map(v, body->addArgument(v.getType(), v.getLoc()));
  for (Operation *c : clones) b.clone(*c, map);
  for (Operation *op : g.ops) b.clone(*op, map);
  SmallVector<Value> results;
  for (Value r : g.root->getResults()) results.push_back(map.lookup(r));
  b.create<YieldOp>(g.root->getLoc(), results);
  g.root->replaceAllUsesWith(fusion.getResults());
  for (Operation *op : llvm::reverse(g.ops)) op->erase();
}

void fuseBlock(Block &block, const match::FusionReport &r) {
  DenseMap<Operation *, int> owner;
  SmallVector<Group> groups;
  for (Operation &op : llvm::reverse(block.without_terminator())) {
    if (!isFusible(&op) || owner.count(&op) || isCheap(&op)) continue;
    groups.push_back(grow(&op, groups.size(), owner, r));
  }
  for (Group &g : groups) {
    if (llvm::count_if(g.ops, isCompute) < 1 || g.ops.size() < 2) continue;
    r.fused(g.root, Twine(g.ops.size()) + " ops into a tl.fusion group rooted at '" +
                        g.root->getName().getStringRef() + "'");
    materialize(g);
  }
}

/// Whether a reduction in `fusion`'s body is under an expanding broadcast.
bool repeatsAReduction(FusionOp fusion) {
  DenseSet<Operation *> repeated;
  for (Operation &op : llvm::reverse(fusion.getBody().front().without_terminator())) {
    bool isRepeated = llvm::any_of(op.getUsers(), [&](Operation *user) {
      return repeated.contains(user) || expands(user);
    });
    if (isRepeated && isReduction(&op)) return true;
    if (isRepeated) repeated.insert(&op);
  }
  return false;
}

struct TlFuseElementwisePass : tl::impl::TlFuseElementwiseBase<TlFuseElementwisePass> {
  using TlFuseElementwiseBase::TlFuseElementwiseBase;

  void runOnOperation() override {
    match::FusionReport r(report, getArgument());
    getOperation().walk([&](func::FuncOp func) {
      for (Block &block : func.getBody()) fuseBlock(block, r);
    });
  }
};

} // namespace

void mlir::tl::regroupRepeatedReductions(func::FuncOp func) {
  SmallVector<FusionOp> bad;
  func.walk([&](FusionOp f) {
    if (repeatsAReduction(f)) bad.push_back(f);
  });
  if (bad.empty()) return;
  DenseSet<Block *> blocks;
  for (FusionOp f : bad) {
    OpBuilder b(f);
    IRMapping map;
    Block &body = f.getBody().front();
    map.map(body.getArguments(), f.getInputs());
    for (Operation &op : body.without_terminator()) b.clone(op, map);
    for (auto [r, v] : llvm::zip(f.getResults(), body.getTerminator()->getOperands()))
      r.replaceAllUsesWith(map.lookupOrDefault(v));
    blocks.insert(f->getBlock());
    f.erase();
  }
  match::FusionReport quiet(false, "tl-fuse-elementwise");
  for (Block *block : blocks) fuseBlock(*block, quiet);
}
