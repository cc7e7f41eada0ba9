//===- Passes.td - tlc compiler passes ---------------------*- tablegen -*-===//
#ifndef TL_COMPILER_PASSES_TD
#define TL_COMPILER_PASSES_TD

include "mlir/Pass/PassBase.td"

def TlAutodiff : Pass<"tl-autodiff", "ModuleOp"> {
  let summary = "Turn a loss function into a training step (reverse-mode autodiff)";
  let description = [{
    For every function with `tl.param` arguments that returns one scalar float
    loss, appends the gradient of the loss with respect to every parameter,
    in parameter order, as extra results: `(loss, d loss / d param_0, ...)`.
    The loss result gets `tl.output = "loss"`, each gradient
    `tl.grad = "<parameter name>"`.

    The pass walks the function backwards from the loss, asks each op on a
    path from a parameter to the loss for its derivative rule
    (`DifferentiableOpInterface`), sums the cotangents of values used more
    than once, and deletes whatever no gradient needs. Forward values are
    reused, never recomputed. A parameter the loss does not depend on gets a
    zero gradient. An op without a rule on such a path is an error at its
    location. Functions that already return gradients are left alone.
  }];
  let dependentDialects = ["::mlir::tl::TLDialect"];
}

#endif // TL_COMPILER_PASSES_TD
