//===- Matchers.cpp - helpers for recognising primitive patterns ---------===//
#include "compiler/Passes/Matchers.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

#include <cstdio>
#include <cstdlib>

namespace mlir::tl::match {

static SmallVector<int64_t> withoutUnitDims(RankedTensorType t) {
  SmallVector<int64_t> dims;
  for (int64_t d : t.getShape())
    if (d != 1) dims.push_back(d);
  return dims;
}

Value skipUnitReshapes(Value v) {
  while (auto r = def<ReshapeOp>(v)) {
    if (withoutUnitDims(r.getInput().getType()) != withoutUnitDims(r.getResult().getType()))
      break;
    v = r.getInput();
  }
  return v;
}

Value skipBroadcasts(Value v) {
  v = skipUnitReshapes(v);
  while (auto b = def<BroadcastOp>(v)) v = skipUnitReshapes(b.getInput());
  return v;
}

std::optional<double> splatValue(Value v) {
  auto c = def<ConstantOp>(skipBroadcasts(v));
  if (!c) return std::nullopt;
  auto dense = dyn_cast<DenseFPElementsAttr>(c.getValue());
  if (!dense || !dense.isSplat()) return std::nullopt;
  // A narrower float (an f32 eps) is read as its shortest decimal, so that
  // 1e-5f becomes 1e-5, not 9.99999974e-6: the difference is far below its
  // own precision and fused ops carry readable attributes.
  APFloat value = dense.getSplatValue<APFloat>();
  double exact = value.convertToDouble();
  if (&value.getSemantics() == &APFloat::IEEEdouble()) return exact;
  for (int digits = 1; digits <= 17; ++digits) {
    char text[32];
    std::snprintf(text, sizeof text, "%.*g", digits, exact);
    APFloat shortest(std::strtod(text, nullptr));
    bool lost;
    shortest.convert(value.getSemantics(), APFloat::rmNearestTiesToEven, &lost);
    if (shortest.bitwiseIsEqual(value)) return std::strtod(text, nullptr);
  }
  return exact;
}

bool matchSquare(Value v, Value &x) {
  if (auto p = def<PowOp>(v)) {
    if (p.getExponent().convertToDouble() != 2.0) return false;
    x = p.getInput();
    return true;
  }
  if (auto m = def<MulOp>(v)) {
    if (m.getLhs() != m.getRhs()) return false;
    x = m.getLhs();
    return true;
  }
  return false;
}

template <typename ReduceOp>
static bool lastAxisReduce(Value v, Value &of, std::string &why) {
  auto r = def<ReduceOp>(v);
  if (!r) return false;
  int64_t last = r.getInput().getType().getRank() - 1;
  if (static_cast<int64_t>(r.getAxis()) != last) {
    why = "the reduction is over axis " + std::to_string(r.getAxis()) +
          ", not the last axis";
    return false;
  }
  of = r.getInput();
  return true;
}

bool matchLastAxisMean(Value v, Value &of, std::string &why) {
  v = skipUnitReshapes(v);
  if (lastAxisReduce<ReduceMeanOp>(v, of, why)) return true;
  // sum * (1/n), sum / n
  Operation *op = v.getDefiningOp();
  if (!op || !isa<MulOp, DivOp>(op)) return false;
  return eitherOrder(op, [&](Value a, Value b) {
    Value sumOf;
    std::optional<double> c = splatValue(b);
    if (!c || !lastAxisReduce<ReduceSumOp>(skipUnitReshapes(a), sumOf, why)) return false;
    double n = static_cast<double>(cast<RankedTensorType>(sumOf.getType()).getShape().back());
    double expect = isa<MulOp>(op) ? 1.0 / n : n;
    if (std::abs(*c - expect) > 1e-6 * std::abs(expect)) {
      why = "the sum is scaled by " + std::to_string(*c) + ", not by the mean's 1/" +
            std::to_string(static_cast<int64_t>(n));
      return false;
    }
    of = sumOf;
    return true;
  });
}

static bool elementCountRowCheck = false;

void setElementCountRowCheckForTesting(bool enabled) { elementCountRowCheck = enabled; }

Value perRowFactor(Value v, std::string &why) {
  auto b = def<BroadcastOp>(skipUnitReshapes(v));
  if (!b) return {};
  auto final = cast<RankedTensorType>(v.getType());
  RankedTensorType in = b.getInput().getType(), out = b.getResult().getType();
  Value row = skipUnitReshapes(b.getInput());
  if (elementCountRowCheck) // the old, wrong test: counts only
    return cast<RankedTensorType>(row.getType()).getNumElements() * out.getShape().back() ==
                   out.getNumElements()
               ? row
               : Value();
  int64_t n = out.getRank();
  if (n == 0 || final.getRank() == 0 || final.getShape().back() != out.getShape().back())
    return {};
  // Which output axes carry an operand axis (rather than repeat it).
  SmallVector<bool> carried(n, false);
  for (auto [i, d] : llvm::enumerate(b.getDims()))
    if (in.getDimSize(i) == out.getDimSize(d)) carried[d] = true;
  for (int64_t a = 0; a + 1 < n; ++a)
    if (!carried[a] && out.getDimSize(a) != 1) {
      why = "the factor is repeated along axis " + std::to_string(a) +
            ", not only along the last axis: it is not one value per row";
      return {};
    }
  if (carried[n - 1] && out.getDimSize(n - 1) != 1) {
    why = "the factor varies along the last axis: it is not one value per row";
    return {};
  }
  return row;
}

Value perRowFactor(Value v) {
  std::string ignored;
  return perRowFactor(v, ignored);
}

Value trailingPlane(Value v, std::string &why) {
  auto b = def<BroadcastOp>(skipUnitReshapes(v));
  if (!b) return skipUnitReshapes(v);
  RankedTensorType in = b.getInput().getType(), out = b.getResult().getType();
  int64_t r = out.getRank();
  if (in.getRank() != 2 || b.getDims() != ArrayRef<int64_t>{r - 2, r - 1}) {
    why = "the mask is not broadcast onto the query and key axes in order";
    return {};
  }
  return b.getInput();
}

Value withRank(Value v, int64_t rank) {
  while (v) {
    if (cast<RankedTensorType>(v.getType()).getRank() == rank) return v;
    auto r = def<ReshapeOp>(v);
    if (!r || skipUnitReshapes(v) == v) return {};
    v = r.getInput();
  }
  return {};
}

Value perChannelVector(Value v) {
  auto b = def<BroadcastOp>(v);
  if (!b) return {};
  RankedTensorType in = b.getInput().getType(), out = b.getResult().getType();
  if (in.getRank() != 1 || b.getDims().back() != out.getRank() - 1 ||
      in.getDimSize(0) != out.getShape().back())
    return {};
  return b.getInput();
}

LogicalResult applyFusionPatterns(Operation *root, RewritePatternSet &&patterns,
                                  const FusionReport &report) {
  if (failed(applyPatternsAndFoldGreedily(root, std::move(patterns)))) return failure();
  return failure(report.failedCheck());
}

static FusionChecker *installedChecker = nullptr;

void setFusionChecker(FusionChecker *checker) { installedChecker = checker; }
FusionChecker *fusionChecker() { return installedChecker; }

void FusionReport::fused(Operation *at, const Twine &what) const {
  if (enabled) at->emitRemark() << pass << ": fused " << what;
}

void FusionReport::refused(Operation *at, const Twine &what, const Twine &why) const {
  if (enabled && refusedAt.insert(at).second)
    at->emitRemark() << pass << ": not fused as " << what << ": " << why;
}

} // namespace mlir::tl::match
