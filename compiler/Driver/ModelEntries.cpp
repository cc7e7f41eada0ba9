//===- ModelEntries.cpp - entry points rebuilt from a DSL model ----------===//
#include "compiler/Driver/ModelEntries.h"

#include "compiler/Passes/Passes.h"
#include "dialects/tl/IR/TlOps.h"
#include "models/tinyllama_decode.h"

#include "mlir/Pass/PassManager.h"

#include <map>

namespace mlir::tl {
namespace {

/// Parameter name -> type, in argument order.
std::map<std::string, Type> paramTypes(func::FuncOp func) {
  std::map<std::string, Type> types;
  for (BlockArgument arg : func.getArguments())
    if (auto name = func.getArgAttrOfType<StringAttr>(arg.getArgNumber(), TLDialect::kParamAttrName))
      types[name.str()] = arg.getType();
  return types;
}

using Builder = OwningOpRef<ModuleOp> (*)(MLIRContext &, const ::tlc::models::LlamaConfig &, Type);

/// `build` applied to the config of `lossFunc`'s tl.model, checked and fused;
/// `what` names the entry point in errors.
FailureOr<OwningOpRef<ModuleOp>> rebuild(func::FuncOp lossFunc, bool printIr, Builder build, const char *what) {
  auto model = lossFunc->getAttrOfType<DictionaryAttr>(TLDialect::kModelAttrName);
  auto name = model ? model.getAs<StringAttr>("model") : StringAttr();
  if (!name || name.getValue() != "tinyllama") return OwningOpRef<ModuleOp>();
  auto config = ::tlc::models::configFromAttr(model);
  if (!config) return lossFunc.emitError(what) << ": " << llvm::toString(config.takeError());
  std::map<std::string, Type> want = paramTypes(lossFunc);
  if (want.empty()) return lossFunc.emitError(what) << ": the model function has no parameters";
  Type floatType = cast<RankedTensorType>(want.begin()->second).getElementType();

  MLIRContext &context = *lossFunc.getContext();
  OwningOpRef<ModuleOp> module = build(context, *config, floatType);
  auto func = *module->getOps<func::FuncOp>().begin();
  if (paramTypes(func) != want)
    return lossFunc.emitError(what) << ": the parameters of the model rebuilt from tl.model differ "
                                       "from this function's (an edited model?): emit it again with tlc emit";
  PassManager pm(&context);
  if (printIr) pm.enableIRPrinting();
  buildLossPipeline(pm);
  if (failed(pm.run(*module))) return failure();
  return module;
}

} // namespace

FailureOr<OwningOpRef<ModuleOp>> buildDecodeStep(func::FuncOp lossFunc, bool printIr) {
  return rebuild(lossFunc, printIr, ::tlc::models::buildTinyLlamaDecode, "decode step");
}

FailureOr<OwningOpRef<ModuleOp>> buildForwardLogits(func::FuncOp lossFunc, bool printIr) {
  return rebuild(lossFunc, printIr, ::tlc::models::buildTinyLlamaLogits, "forward logits");
}

} // namespace mlir::tl
