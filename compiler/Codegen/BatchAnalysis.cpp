//===- BatchAnalysis.cpp - which extents are the micro-batch's -----------===//
#include "compiler/Codegen/BatchAnalysis.h"

#include "dialects/tl/IR/TlOps.h"

#include "llvm/ADT/TypeSwitch.h"
#include "llvm/Support/raw_ostream.h"

namespace mlir::tl::codegen {
namespace {

ArrayRef<int64_t> shapeOf(Value v) { return cast<RankedTensorType>(v.getType()).getShape(); }

/// `a` equals `b` or is a leading part of it: an op's per-row statistic
/// (rstd, lse) or its same-shaped result.
bool isPrefix(ArrayRef<int64_t> a, ArrayRef<int64_t> b) {
  return !a.empty() && a.size() <= b.size() && a == b.take_front(a.size());
}

} // namespace

void BatchAnalysis::refuse(Operation *op, const std::string &what) {
  if (!reason.empty()) return;
  std::string loc;
  llvm::raw_string_ostream os(loc);
  op->getLoc().print(os);
  reason = "'" + op->getName().getStringRef().str() + "' " + what + " (" + loc + ")";
  compiled = 0;
}

BatchAnalysis BatchAnalysis::run(func::FuncOp func) {
  BatchAnalysis a;
  for (BlockArgument arg : func.getArguments()) {
    if (!func.getArgAttr(arg.getArgNumber(), TLDialect::kInputAttrName)) continue;
    ArrayRef<int64_t> s = shapeOf(arg);
    if (s.empty()) continue;
    if (a.compiled == 0) a.compiled = s[0];
    if (s[0] != a.compiled) {
      a.reason = "its inputs differ in their leading extent";
      a.compiled = 0;
      return a;
    }
    a.values.insert(arg);
  }
  if (a.compiled <= 1) {
    if (a.reason.empty()) a.reason = "it is compiled for a micro-batch of one";
    return a;
  }
  func.walk<WalkOrder::PreOrder>([&](Operation *op) { a.visit(op); });  // a fusion before its body
  return a;
}

void BatchAnalysis::visit(Operation *op) {
  if (!resizable()) return;
  auto in = [&](unsigned i) { return values.contains(op->getOperand(i)); };
  auto mark = [&](Value v) {
    if (shapeOf(v).empty() || shapeOf(v)[0] % compiled != 0)
      return refuse(op, "gives the micro-batch a leading extent it does not divide");
    values.insert(v);
  };
  // A tl.fusion's body sees its operands as block arguments; its results
  // are what the body yields.
  if (auto fusion = dyn_cast<FusionOp>(op)) {
    for (auto [arg, operand] : llvm::zip(fusion.getBody().getArguments(), op->getOperands()))
      if (values.contains(operand)) values.insert(arg);
    return;
  }
  if (auto yield = dyn_cast<YieldOp>(op)) {
    for (auto [r, v] : llvm::zip(op->getParentOp()->getResults(), yield->getOperands()))
      if (values.contains(v)) mark(r);
    return;
  }
  llvm::TypeSwitch<Operation *>(op)
      .Case([&](ReshapeOp r) {
        if (in(0)) mark(r.getResult());
      })
      .Case([&](TransposeOp t) {
        if (!in(0)) return;
        if (t.getPerm()[0] != 0) return refuse(op, "moves the micro-batch axis");
        mark(t.getResult());
      })
      .Case([&](BroadcastOp b) {
        if (!in(0)) return;
        if (b.getDims()[0] != 0) return refuse(op, "moves the micro-batch axis");
        mark(b.getResult());
      })
      .Case<ReduceSumOp, ReduceMaxOp, ReduceMeanOp>([&](auto r) {
        if (in(0) && r.getAxis() != 0) mark(r.getResult());  // over axis 0: a loop of run-time length
      })
      .Case([&](SliceOp s) {
        if (!in(0)) return;
        if (s.getAxis() == 0) return refuse(op, "slices the micro-batch axis");
        mark(s.getResult());
      })
      .Case([&](ConcatOp c) {
        bool any = llvm::any_of(op->getOperands(), [&](Value v) { return values.contains(v); });
        if (!any) return;
        if (c.getAxis() == 0) return refuse(op, "concatenates along the micro-batch axis");
        mark(c.getResult());
      })
      .Case([&](MatmulOp m) {
        int64_t rank = shapeOf(m.getResult()).size();
        bool lhs = in(0), rhs = in(1);
        if (!lhs && !rhs) return;
        if (rank > 2) return mark(m.getResult());  // the batch dimensions lead
        // 2-D: a batched lhs gives the result's rows, unless contracted
        // (transposed: a weight gradient, K of run-time length); a batched
        // rhs is contracted unless transposed (then it gives the columns).
        if (lhs && !m.getTransposeLhs()) return mark(m.getResult());
        if (rhs && m.getTransposeRhs()) return refuse(op, "puts the micro-batch in the result's columns");
      })
      .Case([&](GatherOp g) {
        if (in(1)) mark(g.getResult());
      })
      .Case([&](ScatterAddOp) {})  // the table's shape; its loop over the ids is run-time
      .Default([&](Operation *) {
        // Elementwise and fused ops: a result shaped as a batched operand,
        // or as its leading part (per-row statistics), is batched.
        for (Value r : op->getResults())
          for (Value o : op->getOperands())
            if (values.contains(o) && isPrefix(shapeOf(r), shapeOf(o))) {
              mark(r);
              break;
            }
      });
}

} // namespace mlir::tl::codegen
