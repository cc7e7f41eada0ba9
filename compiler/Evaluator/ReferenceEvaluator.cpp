//===- ReferenceEvaluator.cpp - op-by-op host execution of tl ------------===//
#include "compiler/Evaluator/ReferenceEvaluator.h"

#include "compiler/Evaluator/FusedOps.h"
#include "dialects/tl/IR/TlOps.h"
#include "formats/half.h"

#include "llvm/ADT/TypeSwitch.h"

#include <cmath>
#include <functional>
#include <limits>

using namespace mlir;
using namespace mlir::tl;
using ::tlc::HostTensor;

namespace {

std::vector<int64_t> shapeOf(Value v) {
  auto shape = cast<RankedTensorType>(v.getType()).getShape();
  return {shape.begin(), shape.end()};
}

std::vector<int64_t> stridesOf(const std::vector<int64_t> &shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (int64_t i = static_cast<int64_t>(shape.size()) - 2; i >= 0; --i)
    s[i] = s[i + 1] * shape[i + 1];
  return s;
}

/// Product of dims [begin, end).
int64_t span(const std::vector<int64_t> &shape, int64_t begin, int64_t end) {
  int64_t n = 1;
  for (int64_t i = begin; i < end; ++i) n *= shape[i];
  return n;
}

/// Output element `i` of `shape` reads input offset sum(idx[d] * inStride[d]):
/// the gather behind broadcast and transpose.
HostTensor strideGather(const HostTensor &in, const std::vector<int64_t> &shape,
                        const std::vector<int64_t> &inStride) {
  HostTensor out(shape);
  std::vector<int64_t> idx(shape.size(), 0);
  int64_t offset = 0;
  for (int64_t i = 0; i < out.numel(); ++i) {
    out.data[i] = in.data[offset];
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
      offset += inStride[d];
      if (++idx[d] < shape[d]) break;
      offset -= inStride[d] * shape[d];
      idx[d] = 0;
    }
  }
  return out;
}

double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  double e = std::exp(x);
  return e / (1.0 + e);
}

class Interpreter {
public:
  explicit Interpreter(Precision precision) : precision(precision) {}

  /// Runs a block (a function or tl.fusion body) and returns the operands
  /// of its terminator.
  FailureOr<std::vector<HostTensor>> run(Block &body, Operation *where,
                                         const std::vector<HostTensor> &args);

private:
  LogicalResult execute(Operation *op);
  const HostTensor &get(Value v) { return env.find(v)->second; }
  void set(Value v, HostTensor t);

  HostTensor unary(Operation *op, const std::function<double(double)> &f) {
    HostTensor out = get(op->getOperand(0));
    for (double &x : out.data) x = f(x);
    return out;
  }
  HostTensor binary(Operation *op, const std::function<double(double, double)> &f) {
    HostTensor out = get(op->getOperand(0));
    const HostTensor &rhs = get(op->getOperand(1));
    for (int64_t i = 0; i < out.numel(); ++i) out.data[i] = f(out.data[i], rhs.data[i]);
    return out;
  }
  HostTensor reduce(Operation *op, int64_t axis, bool max, bool mean);
  HostTensor matmul(MatmulOp op);
  FailureOr<HostTensor> constant(ConstantOp op);
  FailureOr<HostTensor> gather(GatherOp op);
  FailureOr<HostTensor> scatterAdd(ScatterAddOp op);

  Precision precision;
  DenseMap<Value, HostTensor> env;
  /// The last op that reads each value, so tensors are freed early.
  DenseMap<Value, Operation *> lastUse;
};

/// Rounds a float result to the precision it is computed in and to its
/// storage type when that is narrower.
void Interpreter::set(Value v, HostTensor t) {
  Type elem = cast<RankedTensorType>(v.getType()).getElementType();
  if (elem.isBF16())
    for (double &x : t.data) x = ::tlc::roundToBf16(static_cast<float>(x));
  else if (elem.isF16())
    for (double &x : t.data) x = ::tlc::roundToF16(static_cast<float>(x));
  else if (isa<FloatType>(elem) && precision == Precision::F32)
    for (double &x : t.data) x = static_cast<float>(x);
  env[v] = std::move(t);
}

FailureOr<std::vector<HostTensor>>
Interpreter::run(Block &body, Operation *where, const std::vector<HostTensor> &args) {
  if (args.size() != body.getNumArguments())
    return where->emitError() << "evaluator: expected " << body.getNumArguments()
                              << " arguments, got " << args.size();
  for (auto [i, arg] : llvm::enumerate(body.getArguments())) {
    std::vector<int64_t> shape = shapeOf(arg);
    if (args[i].shape != shape || args[i].numel() != HostTensor::count(shape))
      return where->emitError() << "evaluator: argument #" << i
                                << " does not have the shape of " << arg.getType();
    set(arg, args[i]);
  }
  for (Operation &op : body)
    for (Value operand : op.getOperands()) lastUse[operand] = &op;

  for (Operation &op : body) {
    if (op.hasTrait<OpTrait::IsTerminator>()) {
      std::vector<HostTensor> results;
      for (Value v : op.getOperands()) results.push_back(get(v));
      return results;
    }
    if (failed(execute(&op)))
      return failure();
    for (Value operand : op.getOperands())
      if (lastUse[operand] == &op) env.erase(operand);
  }
  return where->emitError("evaluator: block has no terminator");
}

HostTensor Interpreter::reduce(Operation *op, int64_t axis, bool max, bool mean) {
  const HostTensor &in = get(op->getOperand(0));
  int64_t outer = span(in.shape, 0, axis), n = in.shape[axis],
          inner = span(in.shape, axis + 1, in.rank());
  HostTensor out(shapeOf(op->getResult(0)));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      const double *p = &in.data[o * n * inner + i];
      double acc = max ? -std::numeric_limits<double>::infinity() : 0.0;
      for (int64_t k = 0; k < n; ++k)
        acc = max ? std::max(acc, p[k * inner]) : acc + p[k * inner];
      out.data[o * inner + i] = mean ? acc / static_cast<double>(n) : acc;
    }
  return out;
}

/// Copies the trailing [r, c] matrices of `t`, transposed when asked, so that
/// the product loop below always reads row-major [M, K] x [K, N].
static HostTensor trailingMatrices(const HostTensor &t, bool transpose) {
  if (!transpose) return t;
  std::vector<int64_t> shape = t.shape;
  int64_t r = t.rank();
  std::swap(shape[r - 1], shape[r - 2]);
  std::vector<int64_t> inStride = stridesOf(t.shape);
  std::swap(inStride[r - 1], inStride[r - 2]);
  return strideGather(t, shape, inStride);
}

HostTensor Interpreter::matmul(MatmulOp op) {
  HostTensor a = trailingMatrices(get(op.getLhs()), op.getTransposeLhs());
  HostTensor b = trailingMatrices(get(op.getRhs()), op.getTransposeRhs());
  int64_t m = a.shape[a.rank() - 2], k = a.shape[a.rank() - 1],
          n = b.shape[b.rank() - 1];
  int64_t batches = span(a.shape, 0, a.rank() - 2);
  bool sharedRhs = b.rank() == 2;
  HostTensor out(shapeOf(op.getResult()));
  for (int64_t bi = 0; bi < batches; ++bi) {
    const double *pa = &a.data[bi * m * k];
    const double *pb = &b.data[sharedRhs ? 0 : bi * k * n];
    double *pc = &out.data[bi * m * n];
    for (int64_t i = 0; i < m; ++i)
      for (int64_t kk = 0; kk < k; ++kk) {
        double x = pa[i * k + kk];
        for (int64_t j = 0; j < n; ++j) pc[i * n + j] += x * pb[kk * n + j];
      }
  }
  return out;
}

FailureOr<HostTensor> Interpreter::constant(ConstantOp op) {
  auto dense = dyn_cast<DenseElementsAttr>(op.getValue());
  if (!dense)
    return op.emitError("evaluator: only dense constants are supported");
  HostTensor out(shapeOf(op.getResult()));
  int64_t i = 0;
  if (isa<FloatType>(dense.getElementType())) {
    for (APFloat v : dense.getValues<APFloat>()) {
      bool lost;
      v.convert(APFloat::IEEEdouble(), APFloat::rmNearestTiesToEven, &lost);
      out.data[i++] = v.convertToDouble();
    }
  } else {
    bool isBool = dense.getElementType().isInteger(1);
    for (APInt v : dense.getValues<APInt>())
      out.data[i++] = isBool ? static_cast<double>(v.getZExtValue())
                             : static_cast<double>(v.getSExtValue());
  }
  // Splat attributes iterate once per element too, so i == numel here.
  return out;
}

FailureOr<HostTensor> Interpreter::gather(GatherOp op) {
  const HostTensor &table = get(op.getTable());
  const HostTensor &ids = get(op.getIds());
  int64_t rows = table.shape[0], width = table.shape[1];
  HostTensor out(shapeOf(op.getResult()));
  for (int64_t i = 0; i < ids.numel(); ++i) {
    auto row = static_cast<int64_t>(ids.data[i]);
    if (row < 0 || row >= rows)
      return op.emitError() << "evaluator: id " << row << " at position " << i
                            << " is outside the table's " << rows << " rows";
    std::copy_n(&table.data[row * width], width, &out.data[i * width]);
  }
  return out;
}

FailureOr<HostTensor> Interpreter::scatterAdd(ScatterAddOp op) {
  const HostTensor &updates = get(op.getUpdates());
  const HostTensor &ids = get(op.getIds());
  HostTensor out(shapeOf(op.getResult()));
  int64_t rows = out.shape[0], width = out.shape[1];
  for (int64_t i = 0; i < ids.numel(); ++i) {
    auto row = static_cast<int64_t>(ids.data[i]);
    if (row < 0 || row >= rows)
      return op.emitError() << "evaluator: id " << row << " at position " << i
                            << " is outside the table's " << rows << " rows";
    for (int64_t k = 0; k < width; ++k)
      out.data[row * width + k] += updates.data[i * width + k];
  }
  return out;
}

LogicalResult Interpreter::execute(Operation *op) {
  if (isa<ReferenceSemanticsOpInterface, FusionOp>(op)) {
    std::vector<const HostTensor *> operands;
    for (Value v : op->getOperands()) operands.push_back(&get(v));
    FailureOr<std::vector<HostTensor>> results = failure();
    if (auto fusion = dyn_cast<FusionOp>(op)) {
      std::vector<HostTensor> inputs;
      for (const HostTensor *t : operands) inputs.push_back(*t);
      results = Interpreter(precision).run(fusion.getBody().front(), op, inputs);
    } else {
      results = cast<ReferenceSemanticsOpInterface>(op).evaluate(operands);
    }
    if (failed(results))
      return failure();
    for (auto [value, tensor] : llvm::zip(op->getResults(), *results))
      set(value, std::move(tensor));
    return success();
  }
  FailureOr<HostTensor> result =
      llvm::TypeSwitch<Operation *, FailureOr<HostTensor>>(op)
          .Case([&](NegOp) { return unary(op, [](double x) { return -x; }); })
          .Case([&](ExpOp) { return unary(op, [](double x) { return std::exp(x); }); })
          .Case([&](LogOp) { return unary(op, [](double x) { return std::log(x); }); })
          .Case([&](SqrtOp) { return unary(op, [](double x) { return std::sqrt(x); }); })
          .Case([&](RsqrtOp) {
            return unary(op, [](double x) { return 1.0 / std::sqrt(x); });
          })
          .Case([&](SigmoidOp) { return unary(op, sigmoid); })
          .Case([&](SiluOp) {
            return unary(op, [](double x) { return x * sigmoid(x); });
          })
          .Case([&](TanhOp) { return unary(op, [](double x) { return std::tanh(x); }); })
          .Case([&](SinOp) { return unary(op, [](double x) { return std::sin(x); }); })
          .Case([&](CosOp) { return unary(op, [](double x) { return std::cos(x); }); })
          .Case([&](PowOp p) {
            double e = p.getExponent().convertToDouble();
            return unary(op, [e](double x) { return std::pow(x, e); });
          })
          .Case([&](AddOp) { return binary(op, std::plus<double>()); })
          .Case([&](SubOp) { return binary(op, std::minus<double>()); })
          .Case([&](MulOp) { return binary(op, std::multiplies<double>()); })
          .Case([&](DivOp) { return binary(op, std::divides<double>()); })
          .Case([&](MaxOp) {
            return binary(op, [](double a, double b) { return std::fmax(a, b); });
          })
          .Case([&](MinOp) {
            return binary(op, [](double a, double b) { return std::fmin(a, b); });
          })
          .Case([&](CmpOp c) {
            CmpPredicate pred = c.getPredicate();
            return binary(op, [pred](double a, double b) -> double {
              switch (pred) {
              case CmpPredicate::eq: return a == b;
              case CmpPredicate::ne: return a != b;
              case CmpPredicate::lt: return a < b;
              case CmpPredicate::le: return a <= b;
              case CmpPredicate::gt: return a > b;
              case CmpPredicate::ge: return a >= b;
              }
              return 0.0;
            });
          })
          .Case([&](SelectOp s) {
            HostTensor out = get(s.getFalseValue());
            const HostTensor &cond = get(s.getCondition());
            const HostTensor &t = get(s.getTrueValue());
            for (int64_t i = 0; i < out.numel(); ++i)
              if (cond.data[i] != 0.0) out.data[i] = t.data[i];
            return out;
          })
          .Case([&](ConvertOp) { return get(op->getOperand(0)); })  // set() rounds
          .Case([&](ConstantOp c) { return constant(c); })
          .Case([&](IotaOp iota) {
            std::vector<int64_t> shape = shapeOf(iota.getResult());
            int64_t axis = iota.getAxis(), inner = span(shape, axis + 1, shape.size());
            HostTensor out(shape);
            for (int64_t i = 0; i < out.numel(); ++i)
              out.data[i] = static_cast<double>((i / inner) % shape[axis]);
            return out;
          })
          .Case([&](BroadcastOp b) {
            const HostTensor &in = get(b.getInput());
            std::vector<int64_t> shape = shapeOf(b.getResult());
            std::vector<int64_t> inStride = stridesOf(in.shape);
            std::vector<int64_t> stride(shape.size(), 0);
            for (auto [i, d] : llvm::enumerate(b.getDims()))
              stride[d] = in.shape[i] == 1 ? 0 : inStride[i];
            return strideGather(in, shape, stride);
          })
          .Case([&](ReduceSumOp r) { return reduce(op, r.getAxis(), false, false); })
          .Case([&](ReduceMaxOp r) { return reduce(op, r.getAxis(), true, false); })
          .Case([&](ReduceMeanOp r) { return reduce(op, r.getAxis(), false, true); })
          .Case([&](MatmulOp m) { return matmul(m); })
          .Case([&](ReshapeOp r) {
            return HostTensor(shapeOf(r.getResult()), get(r.getInput()).data);
          })
          .Case([&](TransposeOp t) {
            const HostTensor &in = get(t.getInput());
            std::vector<int64_t> inStride = stridesOf(in.shape), stride;
            for (int64_t p : t.getPerm()) stride.push_back(inStride[p]);
            return strideGather(in, shapeOf(t.getResult()), stride);
          })
          .Case([&](SliceOp s) {
            const HostTensor &in = get(s.getInput());
            int64_t axis = s.getAxis(), outer = span(in.shape, 0, axis),
                    inner = span(in.shape, axis + 1, in.rank()), n = in.shape[axis];
            HostTensor out(shapeOf(s.getResult()));
            int64_t size = s.getSize(), start = s.getStart();
            for (int64_t o = 0; o < outer; ++o)
              std::copy_n(&in.data[(o * n + start) * inner], size * inner,
                          &out.data[o * size * inner]);
            return out;
          })
          .Case([&](ConcatOp c) {
            std::vector<int64_t> shape = shapeOf(c.getResult());
            int64_t axis = c.getAxis(), outer = span(shape, 0, axis),
                    inner = span(shape, axis + 1, shape.size());
            HostTensor out(shape);
            int64_t offset = 0;
            for (Value v : c.getInputs()) {
              const HostTensor &in = get(v);
              int64_t n = in.shape[axis];
              for (int64_t o = 0; o < outer; ++o)
                std::copy_n(&in.data[o * n * inner], n * inner,
                            &out.data[(o * shape[axis] + offset) * inner]);
              offset += n;
            }
            return out;
          })
          .Case([&](GatherOp g) { return gather(g); })
          .Case([&](ScatterAddOp s) { return scatterAdd(s); })
          .Default([&](Operation *) -> FailureOr<HostTensor> {
            return op->emitError() << "evaluator: no rule to execute '"
                                   << op->getName() << "'";
          });
  if (failed(result))
    return failure();
  set(op->getResult(0), std::move(*result));
  return success();
}

} // namespace

FailureOr<std::vector<HostTensor>>
mlir::tl::evaluate(func::FuncOp func, const std::vector<HostTensor> &args,
                   Precision precision) {
  attachReferenceSemantics(*func.getContext());
  return Interpreter(precision).run(func.getBody().front(), func, args);
}
