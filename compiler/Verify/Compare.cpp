//===- Compare.cpp - two tl functions on the same random inputs ---------===//
#include "compiler/Verify/Compare.h"

#include "compiler/Evaluator/ReferenceEvaluator.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/OperationSupport.h"
#include "llvm/Support/raw_ostream.h"

#include <cmath>
#include <limits>
#include <random>

namespace mlir::tl::validation {

using ::tlc::HostTensor;

static std::vector<HostTensor> randomInputs(func::FuncOp func, uint64_t seed) {
  int64_t classes = std::numeric_limits<int64_t>::max();
  for (Type t : func.getArgumentTypes()) {
    auto r = cast<RankedTensorType>(t);
    if (isa<FloatType>(r.getElementType()) && r.getRank() >= 1 && r.getShape().back() > 1)
      classes = std::min(classes, r.getShape().back());
  }
  if (classes == std::numeric_limits<int64_t>::max()) classes = 2;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uniform(-2.0, 2.0);
  std::vector<HostTensor> args;
  for (Type t : func.getArgumentTypes()) {
    auto r = cast<RankedTensorType>(t);
    HostTensor x({r.getShape().begin(), r.getShape().end()});
    Type e = r.getElementType();
    for (double &v : x.data) {
      if (isa<FloatType>(e)) v = uniform(rng);
      else if (e.isInteger(1)) v = static_cast<double>(rng() % 2);
      else v = static_cast<double>(rng() % static_cast<uint64_t>(classes));
    }
    args.push_back(std::move(x));
  }
  return args;
}

static FailureOr<std::vector<HostTensor>> run(func::FuncOp func, const std::vector<HostTensor> &args,
                                              std::string &error) {
  std::string messages;
  ScopedDiagnosticHandler handler(func.getContext(), [&](Diagnostic &d) {
    messages += d.str() + "\n";
    return success();
  });
  auto r = evaluate(func, args, Precision::F64);
  if (failed(r)) error = "@" + func.getSymName().str() + " cannot be evaluated: " + messages;
  return r;
}

FailureOr<Comparison> compareOnRandomInputs(func::FuncOp before, func::FuncOp after,
                                            uint64_t seed, std::string &error,
                                            double tolerance) {
  if (before.getFunctionType() != after.getFunctionType()) {
    error = "the two functions have different signatures";
    return failure();
  }
  for (Type t : before.getArgumentTypes())
    if (!isa<RankedTensorType>(t)) {
      error = "an argument is not a ranked tensor";
      return failure();
    }
  std::vector<HostTensor> args = randomInputs(before, seed);
  auto a = run(before, args, error);
  if (failed(a)) return failure();
  auto b = run(after, args, error);
  if (failed(b)) return failure();
  Comparison c;
  for (size_t r = 0; r < a->size(); ++r) {
    const HostTensor &x = (*a)[r], &y = (*b)[r];
    if (x.shape != y.shape) {
      c.equal = false;
      c.maxError = std::numeric_limits<double>::infinity();
      c.detail = "result " + std::to_string(r) + " has another shape";
      return c;
    }
    for (int64_t i = 0; i < x.numel(); ++i) {
      double p = x.data[i], q = y.data[i];
      if ((std::isnan(p) && std::isnan(q)) || (std::isinf(p) && p == q)) continue;
      double err = std::isfinite(p) && std::isfinite(q) ? std::abs(p - q) / (1 + std::abs(p))
                                                        : std::numeric_limits<double>::infinity();
      if (!(err <= c.maxError)) {
        c.maxError = err;
        c.detail = "result " + std::to_string(r) + " element " + std::to_string(i) + ": " +
                   std::to_string(p) + " before, " + std::to_string(q) + " after";
      }
    }
  }
  c.equal = c.maxError <= tolerance;
  return c;
}

double toleranceFor(func::FuncOp func) {
  bool narrow = false;
  auto check = [&](Type t) {
    if (auto r = dyn_cast<RankedTensorType>(t)) t = r.getElementType();
    narrow |= t.isBF16() || t.isF16();
  };
  for (Type t : func.getArgumentTypes()) check(t);
  func.walk([&](Operation *op) {
    for (Type t : op->getResultTypes()) check(t);
  });
  return narrow ? 5e-2 : 1e-6;
}

int64_t evaluationSize(func::FuncOp func) {
  int64_t n = 0;
  func.walk([&](Operation *op) {
    for (Type t : op->getResultTypes())
      if (auto r = dyn_cast<RankedTensorType>(t)) n += r.getNumElements();
  });
  for (Type t : func.getArgumentTypes())
    if (auto r = dyn_cast<RankedTensorType>(t)) n += r.getNumElements();
  return n;
}

std::string printWithoutLocations(Operation *op, bool elide) {
  std::string text;
  llvm::raw_string_ostream os(text);
  OpPrintingFlags flags;
  if (elide) flags.elideLargeElementsAttrs(64);
  op->print(os, flags);
  return text;
}

} // namespace mlir::tl::validation
