//===- DecodeStep.cpp - the decode step of a DSL model -------------------===//
#include "compiler/Driver/DecodeStep.h"

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

} // namespace

FailureOr<OwningOpRef<ModuleOp>> buildDecodeStep(func::FuncOp lossFunc, bool printIr) {
  auto model = lossFunc->getAttrOfType<DictionaryAttr>(TLDialect::kModelAttrName);
  auto name = model ? model.getAs<StringAttr>("model") : StringAttr();
  if (!name || name.getValue() != "tinyllama") return OwningOpRef<ModuleOp>();
  auto config = ::tlc::models::configFromAttr(model);
  if (!config)
    return lossFunc.emitError("decode step: ") << llvm::toString(config.takeError());
  std::map<std::string, Type> want = paramTypes(lossFunc);
  if (want.empty()) return lossFunc.emitError("decode step: the model function has no parameters");
  Type floatType = cast<RankedTensorType>(want.begin()->second).getElementType();

  MLIRContext &context = *lossFunc.getContext();
  OwningOpRef<ModuleOp> decode = ::tlc::models::buildTinyLlamaDecode(context, *config, floatType);
  auto func = *decode->getOps<func::FuncOp>().begin();
  if (paramTypes(func) != want)
    return lossFunc.emitError("decode step: the parameters of the model rebuilt from tl.model differ "
                              "from this function's (an edited model?): emit it again with tlc emit");
  PassManager pm(&context);
  if (printIr) pm.enableIRPrinting();
  buildLossPipeline(pm);
  if (failed(pm.run(*decode))) return failure();
  return decode;
}

} // namespace mlir::tl
