//===- Recompute.cpp - tl-recompute: trade FLOPs for activation memory ----===//
//
// A training step keeps every forward value its backward reads, from the
// forward until that backward: at the start of the backward all of them are
// live, which is the step's peak. Recomputing a value right before its first
// backward use frees it for the whole stretch in between.
//
// The planner works on an estimate of the arena: every value is a buffer
// live from its producer to its last reader (a reshape is a view of its
// input), the peak is the largest sum of live bytes at any op. It starts
// from the cheap recomputations (auto), then, for a budget, repeatedly takes
// the candidate live at the current peak with the fewest FLOPs per byte
// whose recomputation lowers the peak, until the peak fits. Recomputing a
// value makes its recomputation's inputs live until then, which the
// estimate accounts for, so a value whose inputs are not kept anyway (the
// rope of a projection) is only recomputed when its inputs are too.
//
//===----------------------------------------------------------------------===//
#include "compiler/Passes/Recompute.h"

#include "compiler/Passes/RecomputeInterface.h"

#include "mlir/Analysis/SliceAnalysis.h"
#include "mlir/IR/Diagnostics.h"
#include "llvm/ADT/DenseSet.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/raw_ostream.h"

#include <algorithm>
#include <limits>

namespace mlir::tl {
#define GEN_PASS_DEF_TLRECOMPUTE
#include "compiler/Passes/Passes.h.inc"

std::optional<RecomputeMode> parseRecomputeMode(llvm::StringRef name) {
  if (name == "none") return RecomputeMode::None;
  if (name == "auto") return RecomputeMode::Auto;
  if (name == "full") return RecomputeMode::Full;
  return std::nullopt;
}

const char *recomputeModeName(RecomputeMode mode) {
  return mode == RecomputeMode::None ? "none" : mode == RecomputeMode::Auto ? "auto" : "full";
}

ReturnedValue traceReturned(Value v) {
  ReturnedValue r{v, v.hasOneUse()};
  while (auto reshape = r.root.getDefiningOp<ReshapeOp>()) {
    r.root = reshape.getInput();
    r.onlyReturned &= r.root.hasOneUse();
  }
  return r;
}

bool isGradientOfItsGemm(Value v) {
  auto [root, onlyReturned] = traceReturned(v);
  auto type = dyn_cast<RankedTensorType>(root.getType());
  return onlyReturned && root.getDefiningOp<MatmulOp>() && type &&
         (type.getElementType().isF32() || type.getElementType().isBF16());
}

namespace {

/// FLOPs per element up to which a recomputation counts as cheap: norms,
/// rope and elementwise ops are a few; a GEMM is twice its inner dimension.
constexpr int64_t kCheapFlopsPerElement = 8;
constexpr int kNever = std::numeric_limits<int>::max();

int64_t bytesOf(Value v) {
  auto t = dyn_cast<RankedTensorType>(v.getType());
  if (!t) return 0;
  Type e = t.getElementType();
  int64_t size = e.isBF16() || e.isF16() ? 2 : e.isInteger(1) ? 1 : e.isF64() ? 8 : 4;
  return t.getNumElements() * size;
}

/// The buffer a value lives in: reshapes are views.
Value rootOf(Value v) {
  while (auto r = v.getDefiningOp<ReshapeOp>()) v = r.getInput();
  return v;
}

/// The step as buffers with their readers, and the values that may be
/// recomputed.
class Planner {
public:
  explicit Planner(func::FuncOp func);
  bool valid() const { return valid_; }
  RecomputeReport plan(RecomputeMode mode, int64_t budget);
  void materialize();

private:
  struct Node {
    Value value;
    int def = 0;                // index of its producer
    int64_t bytes = 0;
    std::vector<int> forwardUses, backwardUses;  // op indices
    std::vector<int> inputs;    // nodes its recomputation reads (-1: an argument)
    std::vector<int> readers;   // candidate nodes whose recomputation reads it
    bool candidate = false;
    bool cheap = false;
    int64_t flops = 0;          // of recomputing it
  };
  /// Estimated peak live bytes when the nodes marked in `chosen` are
  /// recomputed; `peakAt` gets the op index of the peak.
  int64_t peak(const std::vector<char> &chosen, int *peakAt = nullptr);
  void clonePositions(const std::vector<char> &chosen);
  Value remapped(Value v, OpBuilder &builder);

  func::FuncOp func_;
  bool valid_ = false;
  std::vector<Operation *> ops_;
  DenseSet<Operation *> forward_;
  std::vector<Node> nodes_;
  DenseMap<Value, int> nodeOf_;
  std::vector<int> clonePos_;
  std::vector<char> chosen_;
  DenseMap<Value, Value> clones_;
};

Planner::Planner(func::FuncOp func) : func_(func) {
  if (func.getBody().getBlocks().size() != 1) return;
  Block &body = func.getBody().front();
  auto ret = dyn_cast<func::ReturnOp>(body.getTerminator());
  if (!ret || ret.getNumOperands() < 2) return;
  // A training step: the loss first, then gradients (tl-autodiff's layout).
  bool hasGrads = false;
  for (unsigned i = 1; i < func.getNumResults(); ++i)
    hasGrads |= static_cast<bool>(func.getResultAttr(i, TLDialect::kGradAttrName));
  if (!hasGrads) return;
  // The forward: everything the loss depends on.
  SetVector<Operation *> slice;
  if (Operation *loss = ret.getOperand(0).getDefiningOp()) {
    BackwardSliceOptions options;
    options.omitBlockArguments = true;
    getBackwardSlice(loss, &slice, options);
    slice.insert(loss);
  }
  forward_.insert(slice.begin(), slice.end());
  DenseMap<Operation *, int> index;
  for (Operation &op : body.without_terminator()) {
    index[&op] = static_cast<int>(ops_.size());
    ops_.push_back(&op);
  }
  for (Operation *op : ops_) {
    int i = index[op];
    for (Value operand : op->getOperands()) {
      auto it = nodeOf_.find(rootOf(operand));
      if (it == nodeOf_.end()) continue;
      Node &n = nodes_[it->second];
      (forward_.contains(op) ? n.forwardUses : n.backwardUses).push_back(i);
    }
    if (isa<ReshapeOp>(op)) continue;
    for (OpResult r : op->getResults()) {
      nodeOf_[r] = static_cast<int>(nodes_.size());
      Node n;
      n.value = r;
      n.def = i;
      n.bytes = bytesOf(r);
      nodes_.push_back(n);
    }
  }
  // A gradient its GEMM adds into the gradient buffer itself takes no arena.
  for (auto [i, v] : llvm::enumerate(ret.getOperands())) {
    Value root = traceReturned(v).root;
    if (func.getResultAttr(i, TLDialect::kGradAttrName) && isGradientOfItsGemm(v) && nodeOf_.count(root))
      nodes_[nodeOf_[root]].bytes = 0;
  }
  for (int id = 0; id < static_cast<int>(nodes_.size()); ++id) {
    Node &n = nodes_[id];
    auto r = cast<OpResult>(n.value);
    auto model = dyn_cast<RecomputeOpInterface>(r.getOwner());
    if (!model || !forward_.contains(r.getOwner()) || !model.canRecompute(r.getResultNumber()))
      continue;
    n.candidate = true;
    n.flops = model.getRecomputeFlops(r.getResultNumber());
    int64_t elements = cast<RankedTensorType>(r.getType()).getNumElements();
    n.cheap = n.flops <= kCheapFlopsPerElement * elements;
    for (Value in : model.getRecomputeInputs(r.getResultNumber())) {
      auto it = nodeOf_.find(rootOf(in));
      n.inputs.push_back(it == nodeOf_.end() ? -1 : it->second);
      if (it != nodeOf_.end()) nodes_[it->second].readers.push_back(id);
    }
  }
  valid_ = true;
}

/// A chosen value is recomputed right before its first reader in the
/// backward, or before the first recomputation that reads it. Readers come
/// later in program order than what they read, so one pass from the last
/// node back settles every position.
void Planner::clonePositions(const std::vector<char> &chosen) {
  clonePos_.assign(nodes_.size(), kNever);
  for (int id = static_cast<int>(nodes_.size()) - 1; id >= 0; --id) {
    if (!chosen[id]) continue;
    int pos = kNever;
    for (int u : nodes_[id].backwardUses) pos = std::min(pos, u);
    for (int w : nodes_[id].readers)
      if (chosen[w]) pos = std::min(pos, clonePos_[w]);
    clonePos_[id] = pos;
  }
}

// Op i runs at tick 2i + 1; recomputations placed before op p at tick 2p.
int64_t Planner::peak(const std::vector<char> &chosen, int *peakAt) {
  clonePositions(chosen);
  std::vector<int64_t> delta(2 * ops_.size() + 3, 0);
  auto live = [&](int from, int to, int64_t bytes) {
    delta[from] += bytes;
    delta[to + 1] -= bytes;
  };
  for (int id = 0; id < static_cast<int>(nodes_.size()); ++id) {
    const Node &n = nodes_[id];
    int end = 2 * n.def + 1, cloneEnd = -1;
    for (int u : n.forwardUses) end = std::max(end, 2 * u + 1);
    auto readLater = [&](int &until) {
      for (int u : n.backwardUses) until = std::max(until, 2 * u + 1);
      for (int w : n.readers)
        if (chosen[w] && clonePos_[w] != kNever) until = std::max(until, 2 * clonePos_[w]);
    };
    if (!chosen[id]) {
      readLater(end);
    } else if (clonePos_[id] != kNever) {
      cloneEnd = 2 * clonePos_[id];
      readLater(cloneEnd);
      live(2 * clonePos_[id], cloneEnd, n.bytes);
    }
    live(2 * n.def + 1, end, n.bytes);
  }
  int64_t current = 0, best = 0;
  int bestTick = 0;
  for (size_t t = 0; t < delta.size(); ++t) {
    current += delta[t];
    if (current > best) best = current, bestTick = static_cast<int>(t);
  }
  if (peakAt) *peakAt = bestTick;
  return best;
}

RecomputeReport Planner::plan(RecomputeMode mode, int64_t budget) {
  RecomputeReport report;
  report.ran = true;
  report.mode = mode;
  report.budget = budget;
  for (Operation *op : ops_) report.stepFlops += flopsOf(op);
  chosen_.assign(nodes_.size(), 0);
  int64_t current = peak(chosen_);
  report.peakBefore = current;
  auto saved = [&](int id) { return !nodes_[id].backwardUses.empty(); };
  auto tryAdd = [&](int id) {
    chosen_[id] = 1;
    int64_t p = peak(chosen_);
    if (p < current) {
      current = p;
      return true;
    }
    chosen_[id] = 0;
    return false;
  };
  if (mode != RecomputeMode::None) {
    // The cheap ones, largest first.
    std::vector<int> cheap;
    for (int id = 0; id < static_cast<int>(nodes_.size()); ++id)
      if (nodes_[id].candidate && nodes_[id].cheap && saved(id)) cheap.push_back(id);
    std::stable_sort(cheap.begin(), cheap.end(),
                     [&](int a, int b) { return nodes_[a].bytes > nodes_[b].bytes; });
    for (int id : cheap) tryAdd(id);
  }
  bool more = mode == RecomputeMode::Full || (mode == RecomputeMode::Auto && budget > 0);
  while (more && (mode == RecomputeMode::Full || current > budget)) {
    int at = 0;
    peak(chosen_, &at);
    // Candidates live at the peak, fewest FLOPs per byte first.
    std::vector<int> order;
    for (int id = 0; id < static_cast<int>(nodes_.size()); ++id) {
      const Node &n = nodes_[id];
      if (!n.candidate || chosen_[id] || 2 * n.def + 1 > at) continue;
      order.push_back(id);
    }
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
      const Node &x = nodes_[a], &y = nodes_[b];
      // x.flops / x.bytes < y.flops / y.bytes without rounding.
      return static_cast<__int128>(x.flops) * y.bytes < static_cast<__int128>(y.flops) * x.bytes;
    });
    more = false;
    for (int id : order)
      if (tryAdd(id)) {
        more = true;
        break;
      }
  }
  report.peakAfter = peak(chosen_);
  for (int id = 0; id < static_cast<int>(nodes_.size()); ++id) {
    if (!chosen_[id] || clonePos_[id] == kNever) continue;
    const Node &n = nodes_[id];
    auto r = cast<OpResult>(n.value);
    RecomputeDecision d;
    d.op = r.getOwner()->getName().getStringRef().str();
    if (r.getOwner()->getNumResults() > 1) d.op += " #" + std::to_string(r.getResultNumber());
    std::string loc;
    llvm::raw_string_ostream os(loc);
    r.getOwner()->getLoc().print(os);
    d.location = os.str();
    d.bytes = n.bytes;
    d.flops = n.flops;
    d.cheap = n.cheap;
    report.recomputedFlops += n.flops;
    report.decisions.push_back(d);
  }
  return report;
}

/// `v` as the backward at the builder's point sees it: a recomputed value's
/// copy, or a view of one rebuilt there.
Value Planner::remapped(Value v, OpBuilder &builder) {
  if (Value c = clones_.lookup(v)) return c;
  auto reshape = v.getDefiningOp<ReshapeOp>();
  if (!reshape || !clones_.count(rootOf(v))) return v;
  return builder.create<ReshapeOp>(reshape.getLoc(), v.getType(), remapped(reshape.getInput(), builder));
}

void Planner::materialize() {
  // In program order, so that a recomputation's recomputed inputs exist
  // (equal positions insert in this order, before the same op).
  for (int id = 0; id < static_cast<int>(nodes_.size()); ++id) {
    if (!chosen_[id] || clonePos_[id] == kNever) continue;
    auto r = cast<OpResult>(nodes_[id].value);
    OpBuilder builder(ops_[clonePos_[id]]);
    SmallVector<Value> inputs;
    auto model = cast<RecomputeOpInterface>(r.getOwner());
    for (Value in : model.getRecomputeInputs(r.getResultNumber())) inputs.push_back(remapped(in, builder));
    clones_[r] = model.buildRecompute(builder, r.getResultNumber(), inputs);
  }
  for (Operation *op : ops_) {
    if (forward_.contains(op)) continue;
    for (OpOperand &use : op->getOpOperands())
      if (clones_.count(rootOf(use.get()))) {
        OpBuilder builder(op);
        use.set(remapped(use.get(), builder));
      }
  }
}

struct TlRecompute : impl::TlRecomputeBase<TlRecompute> {
  using TlRecomputeBase::TlRecomputeBase;
  RecomputeReport *sink = nullptr;

  void runOnOperation() override {
    attachRecomputeModels(getContext());
    std::optional<RecomputeMode> parsed = parseRecomputeMode(mode);
    if (!parsed) {
      getOperation().emitError() << "tl-recompute: mode must be none, auto or full, got '" << mode << "'";
      return signalPassFailure();
    }
    if (budget < 0) {
      getOperation().emitError() << "tl-recompute: budget must be a number of bytes >= 0, got " << static_cast<int64_t>(budget);
      return signalPassFailure();
    }
    for (auto func : getOperation().getOps<func::FuncOp>()) {
      Planner planner(func);
      if (!planner.valid()) continue;
      RecomputeReport r = planner.plan(*parsed, budget);
      planner.materialize();
      if (report) {
        for (const RecomputeDecision &d : r.decisions)
          func.emitRemark() << "recompute " << d.op << " at " << d.location << ": " << d.bytes
                            << " bytes, " << d.flops << " FLOPs" << (d.cheap ? " (cheap)" : "");
        func.emitRemark() << llvm::formatv(
            "tl-recompute ({0}): estimated peak {1} -> {2} bytes, {3} values recomputed, {4} of {5} FLOPs",
            recomputeModeName(*parsed), r.peakBefore, r.peakAfter, r.decisions.size(), r.recomputedFlops,
            r.stepFlops);
      }
      if (sink) *sink = r;
    }
  }
};

} // namespace

std::unique_ptr<Pass> createTlRecomputePass(RecomputeMode mode, int64_t budgetBytes, bool remarks,
                                            RecomputeReport *report) {
  TlRecomputeOptions options;
  options.mode = recomputeModeName(mode);
  options.budget = budgetBytes;
  options.report = remarks;
  auto pass = std::make_unique<TlRecompute>(options);
  pass->sink = report;
  return pass;
}

} // namespace mlir::tl
