//===- Passes.h - tlc compiler passes ----------------------------*- C++ -*-===//
#ifndef TL_COMPILER_PASSES_H
#define TL_COMPILER_PASSES_H

#include "dialects/tl/IR/TlOps.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/Pass.h"

#include <memory>

namespace mlir::tl {

#define GEN_PASS_DECL
#include "compiler/Passes/Passes.h.inc"

/// `registerTlPasses()` registers every tlc pass with the global registry so
/// that tlc-opt and tlc share one list.
#define GEN_PASS_REGISTRATION
#include "compiler/Passes/Passes.h.inc"

/// Kernel formation's guarantee for any input, fused or not: a `tl.fusion`
/// whose body would recompute a reduction for every element of a broadcast
/// (hand-written, or from elsewhere) is inlined and regrouped the way
/// tl-fuse-elementwise groups, which computes such a reduction once.
void regroupRepeatedReductions(func::FuncOp func);

/// A returned value seen through its reshapes (views): the value that
/// produces it, and whether nothing but the return reads it on the way, so
/// that code generation may have the producer write the result itself.
struct ReturnedValue {
  Value root;
  bool onlyReturned;
};
ReturnedValue traceReturned(Value v);

/// Whether the returned gradient `v` is a GEMM's that nothing else reads, in
/// f32 or bf16: code generation has that GEMM add it into the flat f32
/// gradient buffer itself (beta = 1; bf16 operands with an f32 result), so it
/// takes no arena. Lowering and tl-recompute's memory model both ask this.
bool isGradientOfItsGemm(Value v);

/// CSE and the forward fusions (rmsnorm, rope, attention, cross-entropy):
/// the start of every pipeline. A new forward fusion pass goes here.
void addForwardFusions(OpPassManager &pm);
/// The default pipeline: the forward fusions, tl-autodiff, CSE,
/// `afterAutodiff` when given (tl-recompute from tlc compile), elementwise
/// fusion.
void buildTrainPipeline(OpPassManager &pm, std::unique_ptr<Pass> afterAutodiff = nullptr);
/// The forward-only pipeline (the loss, the decode step): the forward
/// fusions, CSE, elementwise fusion.
void buildLossPipeline(OpPassManager &pm);
/// Registers `tl-train-pipeline` for tlc-opt.
void registerTlPipelines();

} // namespace mlir::tl

#endif // TL_COMPILER_PASSES_H
