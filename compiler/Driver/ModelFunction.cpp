#include "compiler/Driver/ModelFunction.h"

#include "dialects/tl/IR/TlOps.h"
#include "formats/artifact.h"

#include "llvm/Support/raw_ostream.h"

namespace mlir::tl {

int64_t NamedArgument::count() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t ModelSignature::parameterCount() const {
  int64_t n = 0;
  for (const auto &p : params) n += p.count();
  return n;
}

std::string typeName(Type type) {
  std::string s;
  llvm::raw_string_ostream os(s);
  type.print(os);
  return os.str();
}

func::FuncOp findModelFunction(ModuleOp module) {
  auto funcs = llvm::to_vector(module.getOps<func::FuncOp>());
  SmallVector<func::FuncOp> models;
  for (func::FuncOp f : funcs)
    if (f->hasAttr(TLDialect::kModelAttrName)) models.push_back(f);
  if (models.size() == 1) return models.front();
  if (models.size() > 1) {
    module.emitError("several functions carry tl.model; expected one");
    return nullptr;
  }
  if (funcs.size() == 1) return funcs.front();
  module.emitError() << "expected one model function, found " << funcs.size()
                     << " functions and none with tl.model";
  return nullptr;
}

namespace {
/// The element count of a static shape, or -1 when it overflows int64.
int64_t checkedCount(ArrayRef<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(n, d, &n)) return -1;
  return n;
}

std::string describeCount(int64_t n) {
  return n < 0 ? "more than 2^63" : std::to_string(n);
}
} // namespace

LogicalResult checkTensorSizes(func::FuncOp func) {
  auto tooBig = [](Type type, int64_t &count) {
    auto t = dyn_cast<RankedTensorType>(type);
    if (!t || !t.hasStaticShape()) return false;
    count = checkedCount(t.getShape());
    return count < 0 || count > ::tlc::artifact::kMaxTensorElements;
  };
  int64_t count = 0;
  for (unsigned i = 0; i < func.getNumArguments(); ++i)
    if (tooBig(func.getArgument(i).getType(), count))
      return func.emitError() << "argument #" << i << " (" << func.getArgument(i).getType()
                              << ") has " << describeCount(count)
                              << " elements, above the limit of 2^31-1 per tensor";
  WalkResult walk = func.walk([&](Operation *op) {
    for (Type t : op->getResultTypes())
      if (tooBig(t, count)) {
        op->emitError() << "result " << t << " has " << describeCount(count)
                        << " elements, above the limit of 2^31-1 per tensor";
        return WalkResult::interrupt();
      }
    return WalkResult::advance();
  });
  return failure(walk.wasInterrupted());
}

FailureOr<ModelSignature> readSignature(func::FuncOp func) {
  ModelSignature sig;
  for (unsigned i = 0; i < func.getNumArguments(); ++i) {
    auto type = dyn_cast<RankedTensorType>(func.getArgument(i).getType());
    if (!type || !type.hasStaticShape())
      return func.emitError() << "argument #" << i
                              << " must be a statically shaped tensor";
    if (checkedCount(type.getShape()) < 0)
      return func.emitError() << "argument #" << i << " has more than 2^63 elements";
    NamedArgument arg{i, "", {type.getShape().begin(), type.getShape().end()},
                      typeName(type.getElementType())};
    if (auto p = func.getArgAttrOfType<StringAttr>(i, TLDialect::kParamAttrName)) {
      arg.name = p.str();
      int64_t total = sig.parameterCount();
      if (__builtin_add_overflow(total, arg.count(), &total))
        return func.emitError() << "the parameters hold more than 2^63 elements in all";
      sig.params.push_back(arg);
    } else if (auto in = func.getArgAttrOfType<StringAttr>(i, TLDialect::kInputAttrName)) {
      arg.name = in.str();
      sig.inputs.push_back(arg);
    } else {
      return func.emitError() << "argument #" << i
                              << " is neither a tl.param nor a tl.input";
    }
  }
  for (unsigned i = 0; i < func.getNumResults(); ++i) {
    auto type = dyn_cast<RankedTensorType>(func.getResultTypes()[i]);
    if (!type || !type.hasStaticShape())
      return func.emitError() << "result #" << i << " must be a statically shaped tensor";
    if (checkedCount(type.getShape()) < 0)
      return func.emitError() << "result #" << i << " has more than 2^63 elements";
    NamedArgument res{i, "result" + std::to_string(i),
                      {type.getShape().begin(), type.getShape().end()},
                      typeName(type.getElementType())};
    if (auto g = func.getResultAttrOfType<StringAttr>(i, TLDialect::kGradAttrName)) {
      res.name = g.str();
      sig.grads.push_back(res);
      continue;
    }
    if (auto o = func.getResultAttrOfType<StringAttr>(i, TLDialect::kOutputAttrName))
      res.name = o.str();
    sig.outputs.push_back(res);
  }
  return sig;
}

} // namespace mlir::tl
