//===- SwiGlu.cpp - SwiGLU's gate and its backward, as expressions -------===//
//
// Elementwise fused ops need no generator: one C expression per result,
// which the expression generator places in a kernel of its own or inside a
// tl.fusion group's kernel, on both targets.
//
//===----------------------------------------------------------------------===//
#include "compiler/Codegen/KernelInterfaces.h"

#include "dialects/tl/IR/TlOps.h"

namespace mlir::tl::codegen {
namespace {

std::string sigmoid(const std::string &x) { return "(1.0f / (1.0f + expf(-" + x + ")))"; }

struct SwiGluExpression : KernelExpressionOpInterface::ExternalModel<SwiGluExpression, SwiGluOp> {
  std::string kernelExpression(Operation *, unsigned, ArrayRef<std::string> x) const {
    return "(" + x[0] + " * " + sigmoid(x[0]) + " * " + x[1] + ")"; // gate * sigmoid(gate) * up
  }
};

struct SwiGluGradExpression : KernelExpressionOpInterface::ExternalModel<SwiGluGradExpression, SwiGluGradOp> {
  std::string kernelExpression(Operation *, unsigned result, ArrayRef<std::string> x) const {
    const std::string &g = x[0], &gate = x[1], &up = x[2], s = sigmoid(gate);
    if (result == 0) // dgate = g * up * s * (1 + gate * (1 - s))
      return "(" + g + " * " + up + " * " + s + " * (1.0f + " + gate + " * (1.0f - " + s + ")))";
    return "(" + g + " * " + gate + " * " + s + ")"; // dup = g * gate * s
  }
};

} // namespace

void attachSwiGluKernels(MLIRContext &context) {
  SwiGluOp::attachInterface<SwiGluExpression>(context);
  SwiGluGradOp::attachInterface<SwiGluGradExpression>(context);
}

} // namespace mlir::tl::codegen
