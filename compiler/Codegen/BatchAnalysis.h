//===- BatchAnalysis.h - which extents are the micro-batch's -----*- C++ -*-===//
//
// One artifact runs any micro-batch up to the compiled one: extents that
// scale with it (the rows of every activation) are run-time kernel
// arguments, the rest (widths, head dims, the sequence) stay literals. This
// finds, for one entry function, the values whose leading axis scales with
// the batch of its inputs.
//
//===----------------------------------------------------------------------===//
#ifndef TL_COMPILER_CODEGEN_BATCHANALYSIS_H
#define TL_COMPILER_CODEGEN_BATCHANALYSIS_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/DenseSet.h"

#include <string>

namespace mlir::tl::codegen {

class BatchAnalysis {
public:
  /// No value batched: every extent a literal (decode steps, hand-written
  /// functions whose batch axis moves).
  BatchAnalysis() = default;

  /// The inputs (`tl.input`) carry the micro-batch on axis 0; it follows
  /// their values through the function. When the batch axis would stop
  /// leading (a transpose, slice or concat of it) the function is not
  /// resizable: `resizable()` is false and `why()` says where.
  static BatchAnalysis run(func::FuncOp func);

  bool resizable() const { return compiled > 1; }
  const std::string &why() const { return reason; }
  /// The compiled micro-batch (0 when not resizable).
  int64_t compiledBatch() const { return resizable() ? compiled : 0; }
  /// Whether `v`'s leading axis scales with the micro-batch.
  bool batched(Value v) const { return resizable() && values.contains(v); }

private:
  void visit(Operation *op);
  void refuse(Operation *op, const std::string &what);

  int64_t compiled = 0;
  llvm::DenseSet<Value> values;
  std::string reason;
};

} // namespace mlir::tl::codegen

#endif
