//===- Compile.cpp - a model to a multi-entry-point artifact -------------===//
#include "compiler/Driver/Compile.h"

#include "compiler/Driver/ModelEntries.h"
#include "compiler/Driver/ModelFunction.h"
#include "compiler/Passes/Passes.h"
#include "compiler/Verify/FusionCheck.h"
#include "dialects/tl/IR/TlOps.h"

#include "mlir/Pass/PassManager.h"

#include <functional>

namespace mlir::tl {

FailureOr<::tlc::artifact::Artifact> compileModel(ModuleOp module, func::FuncOp func,
                                                  bool isLossFunction, bool printIr, bool verifyFusion,
                                                  codegen::LoweringStats &stats,
                                                  const RecomputeRequest &recompute) {
  auto recomputePass = [&] {
    return recompute.mode == RecomputeMode::None && recompute.activationBudget == 0 && !recompute.report
               ? nullptr
               : createTlRecomputePass(recompute.mode, recompute.activationBudget, false, recompute.report);
  };
  if (!isLossFunction) {
    // A training step written by hand: recomputation is its only pass.
    if (auto pass = recomputePass()) {
      PassManager pm(module.getContext());
      pm.addPass(std::move(pass));
      if (failed(pm.run(module))) return failure();
    }
    if (failed(checkTensorSizes(func))) return failure();
    return codegen::lowerToArtifact(func, stats);
  }
  MLIRContext &context = *module.getContext();
  if (printIr) context.disableMultithreading();
  // Built from the function's tl.model before autodiff changes the function.
  FailureOr<OwningOpRef<ModuleOp>> decode = buildDecodeStep(func, printIr);
  if (failed(decode)) return failure();
  FailureOr<OwningOpRef<ModuleOp>> logits = buildForwardLogits(func, printIr);
  if (failed(logits)) return failure();
  // The forward-only copy is taken before autodiff changes the function.
  OwningOpRef<ModuleOp> forward = module.clone();
  auto forwardFunc = forward->lookupSymbol<func::FuncOp>(func.getSymName());
  // The loss is the function's result; autodiff names it so in the training step.
  if (forwardFunc && forwardFunc.getNumResults() == 1 &&
      !forwardFunc.getResultAttr(0, TLDialect::kOutputAttrName))
    forwardFunc.setResultAttr(0, TLDialect::kOutputAttrName, StringAttr::get(&context, "loss"));
  auto runPipeline = [&](ModuleOp m, const std::function<void(OpPassManager &)> &build) {
    PassManager pm(&context);
    if (printIr) pm.enableIRPrinting();
    build(pm);
    return validation::runWithFusionChecking(pm, m, verifyFusion);
  };
  if (!forwardFunc ||
      failed(runPipeline(module, [&](OpPassManager &pm) { buildTrainPipeline(pm, recomputePass()); })) ||
      failed(runPipeline(*forward, [](OpPassManager &pm) { buildLossPipeline(pm); })))
    return failure();
  std::vector<codegen::EntryFunction> entries = {{::tlc::artifact::kTrainStep, func},
                                                 {::tlc::artifact::kEvalLoss, forwardFunc}};
  if (*decode)
    entries.push_back({::tlc::artifact::kDecodeStep, *(*decode)->getOps<func::FuncOp>().begin()});
  if (*logits)
    entries.push_back({::tlc::artifact::kForwardLogits, *(*logits)->getOps<func::FuncOp>().begin()});
  // Sizes are checked on what is lowered: fused attention never stores its scores.
  for (const codegen::EntryFunction &e : entries)
    if (failed(checkTensorSizes(e.func))) return failure();
  return codegen::lowerToArtifact(entries, stats);
}

} // namespace mlir::tl
