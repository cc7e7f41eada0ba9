// tlc-opt: mlir-opt for the tl dialect and every tlc pass.
#include "compiler/Passes/Passes.h"
#include "compiler/Verify/FusionCheck.h"
#include "dialects/tl/IR/TlOps.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/CommandLine.h"

// --verify-fusion: check every fusion on random inputs (compiler/Verify).
static mlir::tl::validation::RegionChecker checker;
static llvm::cl::opt<bool> verifyFusion(
    "verify-fusion",
    llvm::cl::desc("Check every fusion the tl-fuse-* passes make on random inputs of the "
                   "region's shapes with the reference evaluator; a fusion that changes "
                   "the numbers is an error and is not made"),
    llvm::cl::init(false), llvm::cl::cb<void, bool>([](bool on) {
      mlir::tl::match::setFusionChecker(on ? &checker : nullptr);
    }));

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  mlir::tl::registerTlDialects(registry);
  mlir::registerTransformsPasses();
  mlir::tl::registerTlPasses();
  mlir::tl::registerTlPipelines();
  auto result = mlir::MlirOptMain(argc, argv, "tlc optimizer driver\n", registry);
  if (verifyFusion) llvm::errs() << checker.summary() << "\n";
  return mlir::asMainReturnCode(result);
}
