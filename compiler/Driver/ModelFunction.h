//===- ModelFunction.h - finding and describing a tl model function -*- C++ -*-===//
#ifndef TL_COMPILER_DRIVER_MODELFUNCTION_H
#define TL_COMPILER_DRIVER_MODELFUNCTION_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"

#include <string>
#include <vector>

namespace mlir::tl {

/// One named argument of a model function.
struct NamedArgument {
  unsigned index;
  std::string name;
  std::vector<int64_t> shape;
  std::string dtype; // "f32", "bf16", "i32", ...
  int64_t count() const;
};

/// The parameters and data inputs of a function, in argument order, and its
/// results: named by `tl.output` or, for gradients, by their parameter.
struct ModelSignature {
  std::vector<NamedArgument> params, inputs, outputs, grads;
  int64_t parameterCount() const;
};

/// The function carrying `tl.model`, else the module's only function; emits
/// an error and returns null when there is none or the choice is ambiguous.
func::FuncOp findModelFunction(ModuleOp module);

/// Every argument must be named by `tl.param` or `tl.input`; otherwise an
/// error is emitted at the function.
FailureOr<ModelSignature> readSignature(func::FuncOp func);

std::string typeName(Type type);

/// Every tensor the function's arguments, results and ops hold must have at
/// most ::tlc::artifact::kMaxTensorElements (2^31-1) elements (computed without overflow); otherwise
/// an error is emitted at the first offender, naming its type and the limit.
LogicalResult checkTensorSizes(func::FuncOp func);

} // namespace mlir::tl

#endif
