//===- dsl.cpp - tensor handles that emit tl ops -------------------------===//
#include "models/dsl.h"

#include "dialects/tl/IR/TlOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/Support/ErrorHandling.h"

#include <algorithm>
#include <sstream>

using namespace mlir;

namespace tlc::dsl {
namespace {

std::string str(const Shape &s) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << "]";
  return os.str();
}

/// Model code that combines incompatible shapes is a bug in the model, not
/// bad user input: stop with the op's location.
[[noreturn]] void modelError(Graph &g, const std::string &what) {
  std::string where;
  llvm::raw_string_ostream os(where);
  g.loc().print(os);
  llvm::report_fatal_error(llvm::Twine("model definition error at ") + os.str() +
                           ": " + what);
}

int64_t normAxis(Tensor x, int64_t axis) {
  int64_t a = axis < 0 ? axis + x.rank() : axis;
  if (a < 0 || a >= x.rank())
    modelError(x.graph(), "axis " + std::to_string(axis) + " out of range for " +
                              str(x.shape()));
  return a;
}

Shape broadcastShape(Tensor a, Tensor b) {
  Shape sa = a.shape(), sb = b.shape();
  size_t r = std::max(sa.size(), sb.size());
  Shape out(r);
  for (size_t i = 0; i < r; ++i) {
    int64_t da = i < r - sa.size() ? 1 : sa[i - (r - sa.size())];
    int64_t db = i < r - sb.size() ? 1 : sb[i - (r - sb.size())];
    if (da != db && da != 1 && db != 1)
      modelError(a.graph(), "shapes " + str(sa) + " and " + str(sb) +
                                " do not broadcast");
    out[i] = std::max(da, db);
  }
  return out;
}

template <typename OpT> Tensor unaryOp(Tensor x) {
  Graph &g = x.graph();
  return {&g, g.builder().create<OpT>(g.loc(), x.value()).getResult()};
}

template <typename OpT> Tensor binaryOp(Tensor a, Tensor b) {
  Shape s = broadcastShape(a, b);
  a = broadcastTo(a, s);
  b = broadcastTo(b, s);
  Graph &g = a.graph();
  return {&g, g.builder().create<OpT>(g.loc(), a.value(), b.value()).getResult()};
}

Tensor scalarLike(Tensor x, double v) {
  return x.graph().full(x.shape(), v, x.elementType());
}

Tensor compare(mlir::tl::CmpPredicate pred, Tensor a, Tensor b) {
  Shape s = broadcastShape(a, b);
  a = broadcastTo(a, s);
  b = broadcastTo(b, s);
  Graph &g = a.graph();
  return {&g, g.builder().create<mlir::tl::CmpOp>(g.loc(), pred, a.value(), b.value())
                  .getResult()};
}

template <typename OpT> Tensor reduceOp(Tensor x, int64_t axis, bool keepdim) {
  Graph &g = x.graph();
  int64_t a = normAxis(x, axis);
  Tensor r{&g, g.builder().create<OpT>(g.loc(), x.value(), a).getResult()};
  if (!keepdim) return r;
  Shape s = x.shape();
  s[a] = 1;
  return reshape(r, s);
}

} // namespace

//===----------------------------------------------------------------------===//
// Tensor and Graph
//===----------------------------------------------------------------------===//

Shape Tensor::shape() const {
  auto s = cast<RankedTensorType>(value_.getType()).getShape();
  return {s.begin(), s.end()};
}
int64_t Tensor::rank() const {
  return cast<RankedTensorType>(value_.getType()).getRank();
}
int64_t Tensor::dim(int64_t i) const { return shape()[normAxis(*this, i)]; }
Type Tensor::elementType() const {
  return cast<RankedTensorType>(value_.getType()).getElementType();
}

Graph::Graph(MLIRContext &context, const std::string &funcName, Type floatType)
    : builder_(&context), loc_(NameLoc::get(builder_.getStringAttr(funcName))),
      floatType_(floatType) {
  context.loadDialect<mlir::tl::TLDialect, func::FuncDialect>();
  module_ = ModuleOp::create(loc_);
  builder_.setInsertionPointToEnd(module_->getBody());
  auto func = builder_.create<func::FuncOp>(loc_, funcName,
                                            builder_.getFunctionType({}, {}));
  func_ = func;
  body_ = func.addEntryBlock();
  builder_.setInsertionPointToEnd(body_);
}

Tensor Graph::argument(const std::string &attrName, const std::string &name,
                       RankedTensorType type, ArrayRef<NamedAttribute> extra) {
  BlockArgument arg = body_->addArgument(type, loc_);
  SmallVector<NamedAttribute> attrs{builder_.getNamedAttr(attrName, builder_.getStringAttr(name))};
  attrs.append(extra.begin(), extra.end());
  argAttrs_.push_back(builder_.getDictionaryAttr(attrs));
  return {this, arg};
}

Tensor Graph::param(const std::string &name, const Shape &shape, ParamPolicy policy) {
  using mlir::tl::TLDialect;
  SmallVector<NamedAttribute> init;
  switch (policy.init) {
    case ParamPolicy::Init::Normal:
      init.push_back(builder_.getNamedAttr("kind", builder_.getStringAttr("normal")));
      init.push_back(builder_.getNamedAttr("std", builder_.getF64FloatAttr(policy.std)));
      break;
    case ParamPolicy::Init::Ones: init.push_back(builder_.getNamedAttr("kind", builder_.getStringAttr("ones"))); break;
    case ParamPolicy::Init::Zeros: init.push_back(builder_.getNamedAttr("kind", builder_.getStringAttr("zeros"))); break;
  }
  NamedAttribute extra[] = {builder_.getNamedAttr(TLDialect::kInitAttrName, builder_.getDictionaryAttr(init)),
                            builder_.getNamedAttr(TLDialect::kDecayAttrName, builder_.getBoolAttr(policy.decay))};
  return argument(TLDialect::kParamAttrName.str(), name, RankedTensorType::get(shape, floatType_), extra);
}

Tensor Graph::input(const std::string &name, const Shape &shape, Type elementType) {
  return argument(mlir::tl::TLDialect::kInputAttrName.str(), name,
                  RankedTensorType::get(shape, elementType));
}

Tensor Graph::full(const Shape &shape, double value, Type elementType) {
  auto type = RankedTensorType::get(shape, elementType ? elementType : floatType_);
  Attribute element;
  if (auto ft = dyn_cast<FloatType>(type.getElementType()))
    element = builder_.getFloatAttr(ft, value);
  else
    element = builder_.getIntegerAttr(type.getElementType(), static_cast<int64_t>(value));
  auto attr = DenseElementsAttr::get(type, element);
  return {this, builder_.create<mlir::tl::ConstantOp>(loc_, attr).getResult()};
}

Tensor Graph::iota(const Shape &shape, int64_t axis, Type elementType) {
  auto type = RankedTensorType::get(shape, elementType);
  return {this, builder_.create<mlir::tl::IotaOp>(loc_, type, axis).getResult()};
}

void Graph::setConfig(const std::string &key, Attribute value) {
  config_.push_back(builder_.getNamedAttr(key, value));
}

OwningOpRef<ModuleOp> Graph::finish(Tensor result) {
  auto func = cast<func::FuncOp>(func_);
  builder_.create<func::ReturnOp>(loc_, result.value());
  func.setFunctionType(builder_.getFunctionType(body_->getArgumentTypes(),
                                                {result.value().getType()}));
  // All at once: setArgAttr per argument rebuilds the whole (uniqued,
  // never freed) array each time, quadratic in the parameter count.
  func.setAllArgAttrs(argAttrs_);
  if (!config_.empty())
    func->setAttr(mlir::tl::TLDialect::kModelAttrName, builder_.getDictionaryAttr(config_));
  return std::move(module_);
}

Graph::Scope::Scope(Graph &graph, const std::string &name)
    : graph_(graph), saved_(graph.loc_) {
  graph.loc_ = NameLoc::get(graph.builder_.getStringAttr(name));
}
Graph::Scope::~Scope() { graph_.loc_ = saved_; }

OwningOpRef<ModuleOp> Graph::finish(const std::vector<Tensor> &results,
                                    const std::vector<std::string> &names) {
  if (results.empty() || results.size() != names.size())
    modelError(*this, "finish: one name per result, at least one result");
  Operation *func = func_;
  OwningOpRef<ModuleOp> module = finish(results[0]);
  // Widen the single-result return finish() built.
  Block &body = cast<func::FuncOp>(func).getBody().front();
  Operation *ret = body.getTerminator();
  SmallVector<Value> values;
  SmallVector<Type> types;
  for (const Tensor &t : results) {
    values.push_back(t.value());
    types.push_back(t.value().getType());
  }
  builder_.setInsertionPoint(ret);
  builder_.create<func::ReturnOp>(ret->getLoc(), values);
  ret->erase();
  auto f = cast<func::FuncOp>(func);
  f.setFunctionType(builder_.getFunctionType(body.getArgumentTypes(), types));
  for (size_t i = 0; i < names.size(); ++i)
    f.setResultAttr(i, mlir::tl::TLDialect::kOutputAttrName, builder_.getStringAttr(names[i]));
  return module;
}

//===----------------------------------------------------------------------===//
// Operations
//===----------------------------------------------------------------------===//

Tensor operator+(Tensor a, Tensor b) { return binaryOp<mlir::tl::AddOp>(a, b); }
Tensor operator-(Tensor a, Tensor b) { return binaryOp<mlir::tl::SubOp>(a, b); }
Tensor operator*(Tensor a, Tensor b) { return binaryOp<mlir::tl::MulOp>(a, b); }
Tensor operator/(Tensor a, Tensor b) { return binaryOp<mlir::tl::DivOp>(a, b); }
Tensor operator+(Tensor a, double b) { return a + scalarLike(a, b); }
Tensor operator-(Tensor a, double b) { return a - scalarLike(a, b); }
Tensor operator*(Tensor a, double b) { return a * scalarLike(a, b); }
Tensor operator/(Tensor a, double b) { return a / scalarLike(a, b); }
Tensor operator*(double a, Tensor b) { return scalarLike(b, a) * b; }
Tensor operator-(Tensor a) { return unaryOp<mlir::tl::NegOp>(a); }
Tensor maximum(Tensor a, Tensor b) { return binaryOp<mlir::tl::MaxOp>(a, b); }
Tensor minimum(Tensor a, Tensor b) { return binaryOp<mlir::tl::MinOp>(a, b); }

Tensor exp(Tensor x) { return unaryOp<mlir::tl::ExpOp>(x); }
Tensor log(Tensor x) { return unaryOp<mlir::tl::LogOp>(x); }
Tensor sqrt(Tensor x) { return unaryOp<mlir::tl::SqrtOp>(x); }
Tensor rsqrt(Tensor x) { return unaryOp<mlir::tl::RsqrtOp>(x); }
Tensor sigmoid(Tensor x) { return unaryOp<mlir::tl::SigmoidOp>(x); }
Tensor silu(Tensor x) { return unaryOp<mlir::tl::SiluOp>(x); }
Tensor tanh(Tensor x) { return unaryOp<mlir::tl::TanhOp>(x); }
Tensor sin(Tensor x) { return unaryOp<mlir::tl::SinOp>(x); }
Tensor cos(Tensor x) { return unaryOp<mlir::tl::CosOp>(x); }
Tensor pow(Tensor x, double exponent) {
  Graph &g = x.graph();
  return {&g, g.builder()
                  .create<mlir::tl::PowOp>(g.loc(), x.value(),
                                     g.builder().getF64FloatAttr(exponent))
                  .getResult()};
}

Tensor equal(Tensor a, Tensor b) { return compare(mlir::tl::CmpPredicate::eq, a, b); }
Tensor less(Tensor a, Tensor b) { return compare(mlir::tl::CmpPredicate::lt, a, b); }
Tensor greaterEqual(Tensor a, Tensor b) {
  return compare(mlir::tl::CmpPredicate::ge, a, b);
}

Tensor where(Tensor mask, Tensor a, Tensor b) {
  Shape s = broadcastShape(mask, a);
  s = broadcastShape(broadcastTo(a, s), b);
  mask = broadcastTo(mask, s);
  a = broadcastTo(a, s);
  b = broadcastTo(b, s);
  Graph &g = a.graph();
  return {&g, g.builder()
                  .create<mlir::tl::SelectOp>(g.loc(), a.value().getType(), mask.value(),
                                        a.value(), b.value())
                  .getResult()};
}

Tensor convert(Tensor x, Type elementType) {
  if (x.elementType() == elementType) return x;
  Graph &g = x.graph();
  auto type = RankedTensorType::get(x.shape(), elementType);
  return {&g, g.builder().create<mlir::tl::ConvertOp>(g.loc(), type, x.value()).getResult()};
}

Tensor sum(Tensor x, int64_t axis, bool keepdim) {
  return reduceOp<mlir::tl::ReduceSumOp>(x, axis, keepdim);
}
Tensor mean(Tensor x, int64_t axis, bool keepdim) {
  return reduceOp<mlir::tl::ReduceMeanOp>(x, axis, keepdim);
}
Tensor max(Tensor x, int64_t axis, bool keepdim) {
  return reduceOp<mlir::tl::ReduceMaxOp>(x, axis, keepdim);
}

Tensor matmul(Tensor a, Tensor b, bool transposeA, bool transposeB) {
  Graph &g = a.graph();
  return {&g, g.builder()
                  .create<mlir::tl::MatmulOp>(g.loc(), a.value(), b.value(), transposeA,
                                        transposeB)
                  .getResult()};
}

Tensor reshape(Tensor x, const Shape &shape) {
  if (x.shape() == shape) return x;
  Graph &g = x.graph();
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (n != cast<RankedTensorType>(x.value().getType()).getNumElements())
    modelError(g, "cannot reshape " + str(x.shape()) + " to " + str(shape));
  auto type = RankedTensorType::get(shape, x.elementType());
  return {&g, g.builder().create<mlir::tl::ReshapeOp>(g.loc(), type, x.value()).getResult()};
}

Tensor transpose(Tensor x, const std::vector<int64_t> &perm) {
  Graph &g = x.graph();
  return {&g, g.builder().create<mlir::tl::TransposeOp>(g.loc(), x.value(), perm).getResult()};
}

Tensor slice(Tensor x, int64_t axis, int64_t start, int64_t size) {
  Graph &g = x.graph();
  return {&g, g.builder()
                  .create<mlir::tl::SliceOp>(g.loc(), x.value(), normAxis(x, axis), start, size)
                  .getResult()};
}

Tensor concat(const std::vector<Tensor> &xs, int64_t axis) {
  Graph &g = xs.front().graph();
  SmallVector<Value> values;
  for (const Tensor &t : xs) values.push_back(t.value());
  return {&g, g.builder()
                  .create<mlir::tl::ConcatOp>(g.loc(), values, normAxis(xs.front(), axis))
                  .getResult()};
}

Tensor broadcastTo(Tensor x, const Shape &shape) {
  Shape s = x.shape();
  if (s == shape) return x;
  if (s.size() > shape.size())
    modelError(x.graph(), "cannot broadcast " + str(s) + " to " + str(shape));
  int64_t offset = static_cast<int64_t>(shape.size() - s.size());
  std::vector<int64_t> dims;
  for (int64_t i = 0; i < static_cast<int64_t>(s.size()); ++i) {
    if (s[i] != 1 && s[i] != shape[i + offset])
      modelError(x.graph(), "cannot broadcast " + str(s) + " to " + str(shape));
    dims.push_back(i + offset);
  }
  Graph &g = x.graph();
  auto type = RankedTensorType::get(shape, x.elementType());
  return {&g, g.builder()
                  .create<mlir::tl::BroadcastOp>(g.loc(), type, x.value(), dims)
                  .getResult()};
}

Tensor gather(Tensor table, Tensor ids) {
  Graph &g = table.graph();
  return {&g, g.builder()
                  .create<mlir::tl::GatherOp>(g.loc(), table.value(), ids.value())
                  .getResult()};
}

} // namespace tlc::dsl
