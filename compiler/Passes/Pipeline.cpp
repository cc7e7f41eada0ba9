//===- Pipeline.cpp - the default tlc pipeline ---------------------------===//
#include "compiler/Passes/Passes.h"

#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Transforms/Passes.h"

namespace mlir::tl {

void addForwardFusions(OpPassManager &pm) {
  // The one list of forward fusions: every pipeline (train, loss, decode)
  // starts here, so an entry cannot be left unfused by one of them.
  pm.addPass(createCSEPass());
  pm.addPass(createTlFuseRmsNorm());
  // SwiGLU before autodiff, so that its backward is one swiglu_grad: left to
  // tl-fuse-elementwise, the training step stores silu(gate) for the
  // backward and reads and writes the FFN-wide tensors 12 times a layer
  // instead of 8.
  pm.addPass(createTlFuseSwiGlu());
  pm.addPass(createTlFuseRope());
  pm.addPass(createTlFuseAttention());
  pm.addPass(createTlFoldHeadTransposes());
  pm.addPass(createTlFuseCrossEntropy());
}

void buildTrainPipeline(OpPassManager &pm, std::unique_ptr<Pass> afterAutodiff) {
  // Forward fusion first, so autodiff applies the fused ops' rules and emits
  // fused backward ops.
  addForwardFusions(pm);
  pm.addPass(createTlAutodiff());
  pm.addPass(createCSEPass());
  // Recomputed elementwise ops are then fused into the kernels that read them.
  if (afterAutodiff) pm.addPass(std::move(afterAutodiff));
  pm.addPass(createTlFuseElementwise());
}

void buildLossPipeline(OpPassManager &pm) {
  addForwardFusions(pm);
  pm.addPass(createCSEPass());
  pm.addPass(createTlFuseElementwise());
}

void registerTlPipelines() {
  // Its passes run on the module: nested under func.func, MLIR's pass
  // manager would abort ("LLVM ERROR: can't add pass ..."); refuse instead.
  registerPassPipeline(
      "tl-train-pipeline", "The default tlc pipeline: forward fusion, autodiff, elementwise fusion",
      [](OpPassManager &pm, StringRef options, function_ref<LogicalResult(const Twine &)> error) {
        if (!options.empty()) return error("tl-train-pipeline takes no options");
        if (pm.getOpAnchorName() != ModuleOp::getOperationName() &&
            pm.getOpAnchorName() != OpPassManager::getAnyOpAnchorName())
          return error("tl-train-pipeline runs on builtin.module, not nested under '" +
                       pm.getOpAnchorName() + "'");
        buildTrainPipeline(pm);
        return success();
      },
      [](function_ref<void(const ::mlir::detail::PassOptions &)>) {});
}

} // namespace mlir::tl
