//===- Pipeline.cpp - the default tlc pipeline ---------------------------===//
#include "compiler/Passes/Passes.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

namespace mlir::tl {

void buildTrainPipeline(OpPassManager &pm) {
  // Forward fusion first, so autodiff applies the fused ops' rules and emits
  // fused backward ops.
  pm.addPass(createCSEPass());
  pm.addPass(createTlFuseRmsNorm());
  pm.addPass(createTlFuseRope());
  pm.addPass(createTlFuseAttention());
  pm.addPass(createTlFuseCrossEntropy());
  pm.addPass(createTlAutodiff());
  pm.addPass(createCSEPass());
  pm.addPass(createTlFuseElementwise());
}

void buildLossPipeline(OpPassManager &pm) {
  // The training pipeline's fusions without autodiff: the forward-only loss.
  pm.addPass(createCSEPass());
  pm.addPass(createTlFuseRmsNorm());
  pm.addPass(createTlFuseRope());
  pm.addPass(createTlFuseAttention());
  pm.addPass(createTlFuseCrossEntropy());
  pm.addPass(createCSEPass());
  pm.addPass(createTlFuseElementwise());
}

void registerTlPipelines() {
  PassPipelineRegistration<>(
      "tl-train-pipeline",
      "The default tlc pipeline: forward fusion, autodiff, elementwise fusion",
      buildTrainPipeline);
}

} // namespace mlir::tl
