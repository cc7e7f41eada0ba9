#include "compiler/Driver/ModelFunction.h"

#include "dialects/tl/IR/TlOps.h"

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

FailureOr<ModelSignature> readSignature(func::FuncOp func) {
  ModelSignature sig;
  for (unsigned i = 0; i < func.getNumArguments(); ++i) {
    auto type = dyn_cast<RankedTensorType>(func.getArgument(i).getType());
    if (!type || !type.hasStaticShape())
      return func.emitError() << "argument #" << i
                              << " must be a statically shaped tensor";
    NamedArgument arg{i, "", {type.getShape().begin(), type.getShape().end()},
                      typeName(type.getElementType())};
    if (auto p = func.getArgAttrOfType<StringAttr>(i, TLDialect::kParamAttrName)) {
      arg.name = p.str();
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
