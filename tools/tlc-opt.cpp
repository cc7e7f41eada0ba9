// tlc-opt: mlir-opt for the tl dialect and every tlc pass.
#include "compiler/Passes/Passes.h"
#include "dialects/tl/IR/TlOps.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"
#include "mlir/Transforms/Passes.h"

int main(int argc, char **argv) {
  mlir::DialectRegistry registry;
  mlir::tl::registerTlDialects(registry);
  mlir::registerTransformsPasses();
  mlir::tl::registerTlPasses();
  mlir::tl::registerTlPipelines();
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "tlc optimizer driver\n", registry));
}
