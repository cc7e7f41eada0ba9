//===- TlDialect.cpp - dialect registration and attribute checks ---------===//
#include "dialects/tl/IR/TlDialect.h"
#include "dialects/tl/IR/TlOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "llvm/ADT/DenseMap.h"

using namespace mlir;
using namespace mlir::tl;

#include "dialects/tl/IR/TlDialect.cpp.inc"

void TLDialect::initialize() {
  addOperations<
#define GET_OP_LIST
#include "dialects/tl/IR/TlOps.cpp.inc"
      >();
}

void mlir::tl::registerTlDialects(DialectRegistry &registry) {
  registry.insert<TLDialect, func::FuncDialect>();
}

// `tl.init` / `tl.decay` beside a `tl.param`: the parameter's policy.
static LogicalResult verifyParamPolicy(Operation *op, unsigned argIndex, NamedAttribute attr) {
  auto func = dyn_cast<FunctionOpInterface>(op);
  StringRef kind = attr.getName().getValue();
  if (!func || !func.getArgAttr(argIndex, TLDialect::kParamAttrName))
    return op->emitError() << "'" << kind << "' of argument #" << argIndex << " needs a 'tl.param' beside it";
  if (kind == TLDialect::kDecayAttrName) {
    if (!isa<BoolAttr>(attr.getValue()))
      return op->emitError() << "'tl.decay' of argument #" << argIndex << " must be true or false";
    return success();
  }
  auto init = dyn_cast<DictionaryAttr>(attr.getValue());
  auto initKind = init ? init.getAs<StringAttr>("kind") : StringAttr();
  if (!initKind)
    return op->emitError() << "'tl.init' of argument #" << argIndex << " must be a dictionary with a string 'kind'";
  StringRef k = initKind.getValue();
  if (k == "normal") {
    auto std = init.getAs<FloatAttr>("std");
    if (!std || !(std.getValueAsDouble() > 0) || init.size() != 2)
      return op->emitError() << "'tl.init' of argument #" << argIndex << ": kind \"normal\" takes one positive float 'std'";
  } else if ((k == "ones" || k == "zeros")) {
    if (init.size() != 1)
      return op->emitError() << "'tl.init' of argument #" << argIndex << ": kind \"" << k << "\" takes no other field";
  } else {
    return op->emitError() << "'tl.init' of argument #" << argIndex << ": unknown kind \"" << k
                           << "\" (normal, ones, zeros)";
  }
  return success();
}

// `tl.param` / `tl.input` on function arguments: a non-empty name, on a
// statically shaped tensor, unique among the function's named arguments.
LogicalResult TLDialect::verifyRegionArgAttribute(Operation *op,
                                                  unsigned regionIndex,
                                                  unsigned argIndex,
                                                  NamedAttribute attr) {
  StringRef kind = attr.getName().getValue();
  if (kind == kInitAttrName || kind == kDecayAttrName)
    return verifyParamPolicy(op, argIndex, attr);
  if (kind != kParamAttrName && kind != kInputAttrName)
    return op->emitError() << "unknown tl argument attribute '" << kind << "'";
  auto name = dyn_cast<StringAttr>(attr.getValue());
  if (!name || name.getValue().empty())
    return op->emitError() << "'" << kind << "' of argument #" << argIndex
                           << " must be a non-empty string";
  Region &region = op->getRegion(regionIndex);
  if (region.empty())
    return success();
  BlockArgument arg = region.getArgument(argIndex);
  auto type = dyn_cast<RankedTensorType>(arg.getType());
  if (!type || !type.hasStaticShape())
    return op->emitError() << "argument #" << argIndex << " ('"
                           << name.getValue()
                           << "') must be a statically shaped tensor";
  auto func = dyn_cast<FunctionOpInterface>(op);
  if (!func)
    return op->emitError() << "'" << kind << "' is only valid on function arguments";
  // Names are unique across the function: checked once, with a map, from
  // the first named argument (a scan per argument was quadratic).
  auto nameOf = [&](unsigned i) {
    auto p = func.getArgAttrOfType<StringAttr>(i, kParamAttrName);
    return p ? p : func.getArgAttrOfType<StringAttr>(i, kInputAttrName);
  };
  bool first = true;
  for (unsigned i = 0; i < argIndex && first; ++i) first = !nameOf(i);
  if (first) {
    llvm::DenseMap<StringAttr, unsigned> seen;
    for (unsigned i = argIndex, e = func.getNumArguments(); i < e; ++i) {
      StringAttr other = nameOf(i);
      if (!other) continue;
      auto [it, fresh] = seen.try_emplace(other, i);
      if (!fresh)
        return op->emitError() << "arguments #" << it->second << " and #" << i
                               << " share the name '" << other.getValue() << "'";
    }
  }
  if (func.getArgAttr(argIndex, kParamAttrName) &&
      func.getArgAttr(argIndex, kInputAttrName))
    return op->emitError() << "argument #" << argIndex
                           << " cannot be both a parameter and an input";
  return success();
}

// `tl.model` on a function: a dictionary of integer, float and string fields.
LogicalResult TLDialect::verifyOperationAttribute(Operation *op,
                                                  NamedAttribute attr) {
  if (attr.getName().getValue() != kModelAttrName)
    return op->emitError() << "unknown tl attribute '"
                           << attr.getName().getValue() << "'";
  auto dict = dyn_cast<DictionaryAttr>(attr.getValue());
  if (!dict)
    return op->emitError() << "'" << kModelAttrName << "' must be a dictionary";
  for (NamedAttribute field : dict) {
    if (!isa<IntegerAttr, FloatAttr, StringAttr>(field.getValue()))
      return op->emitError() << "'" << kModelAttrName << "' field '"
                             << field.getName().getValue()
                             << "' must be an integer, float or string";
    // Tools read fields as int64 and double (and write them as JSON).
    if (auto i = dyn_cast<IntegerAttr>(field.getValue());
        i && !i.getValue().isSignedIntN(64))
      return op->emitError() << "'" << kModelAttrName << "' field '"
                             << field.getName().getValue() << "' does not fit in 64 bits";
    if (auto f = dyn_cast<FloatAttr>(field.getValue()); f && !f.getValue().isFinite())
      return op->emitError() << "'" << kModelAttrName << "' field '"
                             << field.getName().getValue() << "' must be finite";
  }
  return success();
}

// Results of a training step: `tl.output = "loss"` or `tl.grad = "<param>"`.
LogicalResult TLDialect::verifyRegionResultAttribute(Operation *op,
                                                     unsigned regionIndex,
                                                     unsigned resultIndex,
                                                     NamedAttribute attr) {
  StringRef kind = attr.getName().getValue();
  if (kind != kGradAttrName && kind != kOutputAttrName)
    return op->emitError() << "unknown tl result attribute '" << kind << "'";
  auto name = dyn_cast<StringAttr>(attr.getValue());
  if (!name || name.getValue().empty())
    return op->emitError() << "'" << kind << "' of result #" << resultIndex
                           << " must be a non-empty string";
  return success();
}
