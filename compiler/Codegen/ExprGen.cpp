//===- ExprGen.cpp - elementwise kernels generated from tl IR ------------===//
//
// Each value is generated "at an index": a list of C expressions, one per
// dimension. Elementwise ops keep the index, broadcasts drop or zero
// dimensions, reshapes go through the linear offset, transposes permute,
// slices shift, reductions loop. Values already generated at the same index
// in the current scope are reused, so a chain of elementwise ops becomes
// straight-line code with each intermediate computed once.
//
//===----------------------------------------------------------------------===//
#include "compiler/Codegen/ExprGen.h"

#include "compiler/Codegen/KernelInterfaces.h"

#include "dialects/tl/IR/TlOps.h"

#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/TypeSwitch.h"

#include <sstream>

namespace mlir::tl::codegen {
namespace {

using Index = std::vector<std::string>;

std::string join(const Index &idx) {
  std::string s;
  for (const auto &e : idx) s += e + ",";
  return s;
}

ArrayRef<int64_t> shapeOf(Value v) { return cast<RankedTensorType>(v.getType()).getShape(); }
Type elementOf(Value v) { return cast<RankedTensorType>(v.getType()).getElementType(); }

std::string computeType(Type t) {
  if (isa<FloatType>(t)) return "float";
  if (t.isInteger(1)) return "bool";
  return "int32_t";
}

class Emitter {
public:
  Emitter(const std::string &name, ArrayRef<Value> inputs, const KernelContext &ctx) : name(name), ctx(ctx) {
    for (auto [i, v] : llvm::enumerate(inputs)) inputIndex[v] = static_cast<int>(i);
    scopes.emplace_back();
  }

  /// The variable holding `v` at `idx`, emitting its computation if needed.
  std::string at(Value v, const Index &idx);

  std::string body, fileScope, error;

private:
  void line(const std::string &s) { body += std::string(2 * depth, ' ') + s + "\n"; }
  std::string fresh(const char *prefix) { return prefix + std::to_string(counter++); }
  std::string linear(const Index &idx, ArrayRef<int64_t> shape);
  Index delinear(const std::string &lin, ArrayRef<int64_t> shape);
  std::string compute(Operation *op, Value v, const Index &idx);
  std::string reduce(Operation *op, int64_t axis, const char *init, const char *combine,
                     bool mean, const Index &idx);
  std::string constant(ConstantOp c, const Index &idx);
  std::string concat(ConcatOp c, const Index &idx);
  void push() { scopes.emplace_back(); ++depth; }
  void pop() { scopes.pop_back(); --depth; }

  std::string name;
  const KernelContext &ctx;
  DenseMap<Value, int> inputIndex;
  std::vector<llvm::StringMap<std::string>> scopes;
  DenseMap<Operation *, std::string> tables;
  int counter = 0, depth = 2;
  int expanded = 0; // > 0 while generating what an expanding broadcast repeats
};

std::string Emitter::linear(const Index &idx, ArrayRef<int64_t> shape) {
  if (idx.empty()) return "0";
  std::string e = idx[0];
  for (size_t d = 1; d < idx.size(); ++d)
    e = "(" + e + ") * " + std::to_string(shape[d]) + " + " + idx[d];
  std::string v = fresh("l");
  line("const int64_t " + v + " = " + e + ";");
  return v;
}

Index Emitter::delinear(const std::string &lin, ArrayRef<int64_t> shape) {
  Index idx(shape.size());
  int64_t stride = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = "((" + lin + " / " + std::to_string(stride) + ") % " + std::to_string(shape[d]) + ")";
    stride *= shape[d];
  }
  return idx;
}

std::string Emitter::at(Value v, const Index &idx) {
  if (!error.empty()) return "0";
  std::string key = std::to_string(reinterpret_cast<uintptr_t>(v.getAsOpaquePointer())) + "@" + join(idx);
  for (auto it = scopes.rbegin(); it != scopes.rend(); ++it)
    if (auto found = it->find(key); found != it->end()) return found->second;
  std::string expr;
  if (auto in = inputIndex.find(v); in != inputIndex.end()) {
    std::string p = "in" + std::to_string(in->second);
    std::string lin = linear(idx, shapeOf(v));
    Type t = elementOf(v);
    expr = t.isBF16() ? "bf2f(" + p + "[" + lin + "])"
           : t.isInteger(1) ? "(" + p + "[" + lin + "] != 0)"
                            : p + "[" + lin + "]";
  } else {
    expr = compute(v.getDefiningOp(), v, idx);
  }
  std::string var = fresh("v");
  line("const " + computeType(elementOf(v)) + " " + var + " = " + expr + ";");
  scopes.back()[key] = var;
  return var;
}

std::string Emitter::reduce(Operation *op, int64_t axis, const char *init, const char *combine,
                            bool mean, const Index &idx) {
  Value in = op->getOperand(0);
  // Over the micro-batch axis, the loop's length is the run's.
  const std::string n = axis == 0 ? ctx.count(in, shapeOf(in)[0]).expr : std::to_string(shapeOf(in)[axis]);
  // Each work item would redo the whole loop for every element the
  // broadcast repeats: kernel formation (tl-fuse-elementwise) materialises
  // such reductions, so one reaching here is a bug upstream.
  if (expanded > 0)
    error = "a reduction under a broadcast would be recomputed for every output element; "
            "kernel formation must materialise it";
  std::string acc = fresh("acc"), r = fresh("r");
  line("float " + acc + " = " + init + ";");
  line("for (int64_t " + r + " = 0; " + r + " < " + n + "; ++" + r + ") {");
  push();
  Index inner = idx;
  inner.insert(inner.begin() + axis, r);
  std::string x = at(in, inner);
  line(acc + " = " + (*combine ? std::string(combine) + "(" + acc + ", " + x + ")"
                               : acc + " + " + x) + ";");
  pop();
  line("}");
  return mean ? acc + " / (float)" + n : acc;
}

std::string Emitter::constant(ConstantOp c, const Index &idx) {
  auto dense = dyn_cast<DenseElementsAttr>(c.getValue());
  if (!dense) {
    error = "only dense constants can be generated";
    return "0";
  }
  Type t = dense.getElementType();
  if (dense.isSplat()) {
    if (isa<FloatType>(t)) return floatLiteral(dense.getSplatValue<APFloat>().convertToDouble());
    APInt v = dense.getSplatValue<APInt>();
    return t.isInteger(1) ? (v.isZero() ? "false" : "true")
                          : "(int32_t)" + std::to_string(v.getSExtValue());
  }
  std::string &table = tables[c];
  if (table.empty()) {
    table = name + "_c" + std::to_string(tables.size());
    std::ostringstream os;
    os << "TL_CONST " << (isa<FloatType>(t) ? "float" : "int32_t") << " " << table << "["
       << dense.getNumElements() << "] = {";
    if (isa<FloatType>(t)) {
      for (APFloat v : dense.getValues<APFloat>()) os << floatLiteral(v.convertToDouble()) << ",";
    } else {
      for (APInt v : dense.getValues<APInt>()) os << v.getSExtValue() << ",";
    }
    os << "};\n";
    fileScope += os.str();
  }
  return table + "[" + linear(idx, shapeOf(c.getResult())) + "]";
}

std::string Emitter::concat(ConcatOp c, const Index &idx) {
  int64_t axis = c.getAxis(), offset = 0;
  std::string var = fresh("cat");
  line(computeType(elementOf(c.getResult())) + " " + var + ";");
  for (auto [k, in] : llvm::enumerate(c.getInputs())) {
    int64_t n = shapeOf(in)[axis];
    bool last = k + 1 == c.getInputs().size();
    line(std::string(k ? "} else " : "") + (last ? "{" : "if (" + idx[axis] + " < " +
                                                         std::to_string(offset + n) + ") {"));
    push();
    Index inner = idx;
    inner[axis] = "(" + idx[axis] + " - " + std::to_string(offset) + ")";
    line(var + " = " + at(in, inner) + ";");
    pop();
    offset += n;
  }
  line("}");
  return var;
}

std::string Emitter::compute(Operation *op, Value v, const Index &idx) {
  auto arg = [&](unsigned i) { return at(op->getOperand(i), idx); };
  auto fn = [&](const char *f) { return std::string(f) + "(" + arg(0) + ")"; };
  auto bin = [&](const char *o) { return "(" + arg(0) + " " + o + " " + arg(1) + ")"; };
  return llvm::TypeSwitch<Operation *, std::string>(op)
      .Case([&](NegOp) { return "(-" + arg(0) + ")"; })
      .Case([&](ExpOp) { return fn("expf"); })
      .Case([&](LogOp) { return fn("logf"); })
      .Case([&](SqrtOp) { return fn("sqrtf"); })
      .Case([&](RsqrtOp) { return "(1.0f / sqrtf(" + arg(0) + "))"; })
      .Case([&](SigmoidOp) { return "(1.0f / (1.0f + expf(-" + arg(0) + ")))"; })
      .Case([&](SiluOp) {
        std::string x = arg(0);
        return "(" + x + " / (1.0f + expf(-" + x + ")))";
      })
      .Case([&](TanhOp) { return fn("tanhf"); })
      .Case([&](SinOp) { return fn("sinf"); })
      .Case([&](CosOp) { return fn("cosf"); })
      .Case([&](PowOp p) {
        double e = p.getExponent().convertToDouble();
        std::string x = arg(0);
        return e == 2.0 ? "(" + x + " * " + x + ")" : "powf(" + x + ", " + floatLiteral(e) + ")";
      })
      .Case([&](AddOp) { return bin("+"); })
      .Case([&](SubOp) { return bin("-"); })
      .Case([&](MulOp) { return bin("*"); })
      .Case([&](DivOp) { return bin("/"); })
      .Case([&](MaxOp) { return "fmaxf(" + arg(0) + ", " + arg(1) + ")"; })
      .Case([&](MinOp) { return "fminf(" + arg(0) + ", " + arg(1) + ")"; })
      .Case([&](CmpOp c) {
        const char *ops[] = {"==", "!=", "<", "<=", ">", ">="};
        return bin(ops[static_cast<int>(c.getPredicate())]);
      })
      .Case([&](SelectOp) { return "(" + arg(0) + " ? " + arg(1) + " : " + arg(2) + ")"; })
      .Case([&](ConvertOp c) {
        Type to = elementOf(c.getResult());
        std::string x = "(" + computeType(to) + ")(" + arg(0) + ")";
        if (to.isBF16()) return "bfround(" + x + ")";
        if (to.isF16() || to.isF64()) error = "f16 and f64 values cannot be generated";
        return x;
      })
      .Case([&](ConstantOp c) { return constant(c, idx); })
      .Case([&](IotaOp i) {
        return "(" + computeType(elementOf(v)) + ")(" + idx[i.getAxis()] + ")";
      })
      .Case([&](BroadcastOp b) {
        ArrayRef<int64_t> in = shapeOf(b.getInput());
        Index inner;
        for (auto [i, d] : llvm::enumerate(b.getDims()))
          inner.push_back(in[i] == 1 ? std::string("0") : idx[d]);
        bool expands = b.getResult().getType().getNumElements() > b.getInput().getType().getNumElements();
        expanded += expands;
        std::string x = at(b.getInput(), inner);
        expanded -= expands;
        return x;
      })
      .Case([&](ReshapeOp r) {
        std::string lin = linear(idx, shapeOf(r.getResult()));
        return at(r.getInput(), delinear(lin, shapeOf(r.getInput())));
      })
      .Case([&](TransposeOp t) {
        Index inner(idx.size());
        for (auto [i, p] : llvm::enumerate(t.getPerm())) inner[p] = idx[i];
        return at(t.getInput(), inner);
      })
      .Case([&](SliceOp s) {
        Index inner = idx;
        inner[s.getAxis()] = "(" + idx[s.getAxis()] + " + " + std::to_string(s.getStart()) + ")";
        return at(s.getInput(), inner);
      })
      .Case([&](ConcatOp c) { return concat(c, idx); })
      .Case([&](ReduceSumOp r) { return reduce(op, r.getAxis(), "0.0f", "", false, idx); })
      .Case([&](ReduceMeanOp r) { return reduce(op, r.getAxis(), "0.0f", "", true, idx); })
      .Case([&](ReduceMaxOp r) { return reduce(op, r.getAxis(), "(-TL_INF)", "fmaxf", false, idx); })
      .Case([&](KernelExpressionOpInterface k) {
        SmallVector<std::string> operands;
        for (unsigned i = 0; i < op->getNumOperands(); ++i) operands.push_back(arg(i));
        return k.kernelExpression(cast<OpResult>(v).getResultNumber(), operands);
      })
      .Default([&](Operation *) {
        error = "no elementwise code generation for '" + op->getName().getStringRef().str() + "'";
        return std::string("0");
      });
}

/// The CPU form of an elementwise body: rows (the leading dimensions, their
/// indices derived once per row) in parallel, and a contiguous innermost
/// loop the C++ compiler vectorises: no index division per element. Empty
/// when there are too few rows to share out (the flat loop serves).
std::string cpuRowLoop(ArrayRef<int64_t> shape, const Index &idx, const std::string &body, const Count &count) {
  if (shape.size() < 2) return "";
  int64_t inner = shape.back(), rows = 1;
  for (int64_t d : shape.drop_back()) rows *= d;
  if (rows < 64) return "";
  std::string decls;
  int64_t stride = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 2; d >= 0; --d) {
    if (body.find(idx[d]) != std::string::npos)
      decls = "    const int64_t " + idx[d] + " = (r_ / " + std::to_string(stride) + ") % " +
              std::to_string(shape[d]) + ";\n" + decls;
    stride *= shape[d];
  }
  std::string n = std::to_string(inner), last = idx.back();
  const std::string rowCount = count.batched ? "(" + count.expr + " / " + n + ")" : std::to_string(rows);
  return cpuParallelFor(rows * inner) + "  for (int64_t r_ = 0; r_ < " + rowCount +
         "; ++r_) {\n" + decls + "  for (int64_t " + last + " = 0; " + last + " < " + n + "; ++" + last +
         ") {\n    const int64_t i = r_ * " + n + " + " + last + ";\n" + body + "  }\n  }\n";
}

} // namespace

FailureOr<std::string> storageType(Type t) {
  if (t.isF32()) return std::string("float");
  if (t.isBF16()) return std::string("uint16_t");
  if (t.isInteger(32)) return std::string("int32_t");
  if (t.isInteger(1)) return std::string("uint8_t");
  return failure();
}

FailureOr<KernelSpec> generateExpressionKernel(const std::string &name, ArrayRef<Value> inputs,
                                               ArrayRef<Value> outputs, Location loc, const KernelContext &ctx) {
  KernelSpec k;
  k.name = name;
  Value output = outputs.front();
  ArrayRef<int64_t> shape = shapeOf(output);
  for (auto [o, v] : llvm::enumerate(outputs)) {
    if (shapeOf(v) != shape)
      return emitError(loc) << "code generation: the results of one kernel differ in shape";
    auto s = storageType(elementOf(v));
    if (failed(s)) return emitError(loc) << "code generation: unsupported element type " << elementOf(v);
    k.params.push_back({outputs.size() == 1 ? "out" : "out" + std::to_string(o), *s, false});
  }
  for (auto [i, v] : llvm::enumerate(inputs)) {
    auto s = storageType(elementOf(v));
    if (failed(s))
      return emitError(loc) << "code generation: unsupported element type " << elementOf(v);
    k.params.push_back({"in" + std::to_string(i), *s, true});
  }
  Emitter e(name, inputs, ctx);
  Index idx(shape.size());
  for (size_t d = 0; d < shape.size(); ++d) idx[d] = "o" + std::to_string(d) + "_";
  // The results share the loads and the subexpressions they have in common.
  std::string store;
  for (auto [o, out] : llvm::enumerate(outputs)) {
    std::string v = e.at(out, idx);
    Type t = elementOf(out);
    std::string value = t.isBF16() ? "f2bf(" + v + ")" : t.isInteger(1) ? "(uint8_t)(" + v + ")" : v;
    store += "    " + k.params[o].name + "[i] = " + value + ";\n";
  }
  if (!e.error.empty()) return emitError(loc) << "code generation: " << e.error;
  // The output's index, for the dimensions the body reads.
  std::string decls;
  int64_t stride = 1;
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    if (e.body.find(idx[d]) != std::string::npos)
      decls = "    const int64_t " + idx[d] + " = (i / " + std::to_string(stride) + ") % " +
              std::to_string(shape[d]) + ";\n" + decls;
    stride *= shape[d];
  }
  k.body = decls + e.body + store;
  const Count count = ctx.count(output, cast<RankedTensorType>(output.getType()).getNumElements());
  k.cpuLoop = cpuRowLoop(shape, idx, e.body + store, count);
  k.fileScope = e.fileScope;
  k.workItems = count.compiled;
  k.count = count.expr;
  k.batchedGrid = count.batched;
  k.finalizeLaunch();
  return k;
}

FailureOr<KernelSpec> generateExpressionKernel(const std::string &name, ArrayRef<Value> inputs,
                                               Value output, Location loc, const KernelContext &ctx) {
  return generateExpressionKernel(name, inputs, ArrayRef<Value>{output}, loc, ctx);
}

} // namespace mlir::tl::codegen
