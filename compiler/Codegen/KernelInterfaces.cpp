//===- KernelInterfaces.cpp - attaching the kernel models ----------------===//
#include "compiler/Codegen/KernelInterfaces.h"

#include "dialects/tl/IR/TlOps.h"

#include "compiler/Codegen/KernelInterfaces.cpp.inc"

namespace mlir::tl::codegen {

// One `void attach<File>Kernels(MLIRContext &)` per Kernels/<File>.cpp; the
// build writes the list (KernelFiles.inc) from the directory.
#define TL_KERNEL_FILE(File) void attach##File##Kernels(MLIRContext &context);
#include "compiler/Codegen/KernelFiles.inc"
#undef TL_KERNEL_FILE

void attachKernelInterfaces(MLIRContext &context) {
  context.getOrLoadDialect<TLDialect>();
  // Attaching a model twice is a no-op in MLIR (the interface map keeps the
  // first), so every lowering may call this.
#define TL_KERNEL_FILE(File) attach##File##Kernels(context);
#include "compiler/Codegen/KernelFiles.inc"
#undef TL_KERNEL_FILE
}

} // namespace mlir::tl::codegen
