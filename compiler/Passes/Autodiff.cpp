//===- Autodiff.cpp - tl-autodiff: loss function -> training step --------===//
//
// Reverse-mode differentiation over the ops' DifferentiableOpInterface rules:
//   1. mark the active values: floats that depend on a parameter and that the
//      loss depends on;
//   2. walk the ops backwards from the loss, seeding d loss = 1, building each
//      active op's vector-Jacobian product and summing the cotangents of
//      values used more than once;
//   3. return (loss, gradients in parameter order) and delete the ops no
//      result needs (cotangents of inputs, of constants, ...).
//
//===----------------------------------------------------------------------===//
#include "compiler/Passes/Passes.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/Transforms/RegionUtils.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace mlir::tl {
#define GEN_PASS_DEF_TLAUTODIFF
#include "compiler/Passes/Passes.h.inc"
} // namespace mlir::tl

using namespace mlir;
using namespace mlir::tl;

namespace {

bool isFloatTensor(Value v) {
  auto type = dyn_cast<RankedTensorType>(v.getType());
  return type && isa<FloatType>(type.getElementType());
}

Value zerosOf(OpBuilder &b, Location loc, Type type) {
  auto t = cast<RankedTensorType>(type);
  return b.create<ConstantOp>(
      loc, DenseElementsAttr::get(t, b.getFloatAttr(t.getElementType(), 0.0)));
}

bool isTrainingStep(func::FuncOp func) {
  for (unsigned i = 0; i < func.getNumResults(); ++i)
    if (func.getResultAttr(i, TLDialect::kGradAttrName)) return true;
  return false;
}

LogicalResult differentiate(func::FuncOp func) {
  Block &body = func.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());

  SmallVector<BlockArgument> params;
  for (BlockArgument arg : body.getArguments())
    if (func.getArgAttr(arg.getArgNumber(), TLDialect::kParamAttrName))
      params.push_back(arg);
  if (params.empty())
    return func.emitError("tl-autodiff: the function has no tl.param "
                          "arguments to differentiate");
  if (ret.getNumOperands() != 1)
    return ret.emitError() << "tl-autodiff: expected one result, the loss; got "
                           << ret.getNumOperands();
  Value loss = ret.getOperand(0);
  auto lossType = dyn_cast<RankedTensorType>(loss.getType());
  if (!lossType || lossType.getRank() != 0 || !isFloatTensor(loss))
    return ret.emitError() << "tl-autodiff: the loss must be a scalar float "
                              "tensor, got "
                           << loss.getType();
  for (BlockArgument p : params)
    if (!isFloatTensor(p))
      return func.emitError() << "tl-autodiff: parameter #" << p.getArgNumber()
                              << " is not a float tensor";

  // 1. Active values.
  DenseSet<Value> varied(params.begin(), params.end());
  for (Operation &op : body.without_terminator())
    if (llvm::any_of(op.getOperands(), [&](Value v) { return varied.contains(v); }))
      for (Value r : op.getResults())
        if (isFloatTensor(r)) varied.insert(r);
  DenseSet<Value> useful{loss};
  for (Operation &op : llvm::reverse(body.without_terminator()))
    if (llvm::any_of(op.getResults(), [&](Value v) { return useful.contains(v); }))
      useful.insert(op.operand_begin(), op.operand_end());
  auto active = [&](Value v) {
    return varied.contains(v) && useful.contains(v) && isFloatTensor(v);
  };

  // 2. The backward sweep, emitted before the return.
  SmallVector<Operation *> forward;
  for (Operation &op : body.without_terminator()) forward.push_back(&op);
  OpBuilder b(ret);
  DenseMap<Value, Value> cotangent;
  cotangent[loss] = b.create<ConstantOp>(
      loss.getLoc(), DenseElementsAttr::get(lossType, b.getFloatAttr(
                                                          lossType.getElementType(), 1.0)));
  for (Operation *op : llvm::reverse(forward)) {
    bool reached = llvm::any_of(op->getResults(), [&](Value r) {
      return cotangent.count(r) != 0;
    });
    if (!reached || !llvm::any_of(op->getOperands(), active)) continue;
    auto rule = dyn_cast<DifferentiableOpInterface>(op);
    if (!rule)
      return op->emitOpError("has no derivative rule but lies on a path from a "
                             "parameter to the loss (tl-autodiff)");
    // A saved statistic (rstd, lse, ...) has no derivative rule: a loss
    // through one is refused, not given a gradient without that path.
    unsigned differentiable = 0;
    for (unsigned i = 0; i < op->getNumResults(); ++i)
      differentiable += rule.isDifferentiableResult(i);
    for (auto [i, r] : llvm::enumerate(op->getResults()))
      if (cotangent.count(r) && !rule.isDifferentiableResult(i))
        return op->emitOpError() << "result #" << i
                                 << " (a saved statistic) lies on a path to the loss; tl-autodiff "
                                    "differentiates only the op's first "
                                 << differentiable << " result(s)";
    // Null for results that do not reach the loss (saved statistics).
    SmallVector<Value> resultCotangents;
    for (Value r : op->getResults()) resultCotangents.push_back(cotangent.lookup(r));
    SmallVector<Value> operandCotangents;
    if (failed(rule.buildVjp(b, resultCotangents, operandCotangents)))
      return failure();
    if (operandCotangents.size() != op->getNumOperands())
      return op->emitOpError() << "derivative rule built "
                               << operandCotangents.size() << " cotangents for "
                               << op->getNumOperands() << " operands";
    for (auto [i, operand] : llvm::enumerate(op->getOperands())) {
      if (!active(operand)) continue;
      Value c = operandCotangents[i];
      if (!c || c.getType() != operand.getType())
        return op->emitOpError() << "derivative rule gives no cotangent of type "
                                 << operand.getType() << " for operand #" << i
                                 << ", which depends on a parameter";
      auto [it, first] = cotangent.try_emplace(operand, c);
      if (!first) it->second = b.create<AddOp>(op->getLoc(), it->second, c);
    }
  }

  // 3. Results: the loss, then one gradient per parameter.
  SmallVector<Value> results{loss};
  for (BlockArgument p : params) {
    Value g = cotangent.lookup(p);
    results.push_back(g ? g : zerosOf(b, p.getLoc(), p.getType()));
  }
  ret->setOperands(results);
  func.setFunctionType(b.getFunctionType(
      func.getArgumentTypes(), ValueRange(results).getTypes()));
  func.setResultAttr(0, TLDialect::kOutputAttrName, b.getStringAttr("loss"));
  for (auto [i, p] : llvm::enumerate(params))
    func.setResultAttr(i + 1, TLDialect::kGradAttrName,
                       func.getArgAttr(p.getArgNumber(), TLDialect::kParamAttrName));

  // Users follow their producers, so one backward pass removes dead chains.
  for (Operation &op : llvm::make_early_inc_range(llvm::reverse(body)))
    if (isOpTriviallyDead(&op)) op.erase();
  return success();
}

struct TlAutodiffPass : tl::impl::TlAutodiffBase<TlAutodiffPass> {
  void runOnOperation() override {
    for (func::FuncOp func : getOperation().getOps<func::FuncOp>()) {
      if (func.isExternal() || isTrainingStep(func)) continue;
      if (failed(differentiate(func))) return signalPassFailure();
    }
  }
};

} // namespace
