//===- Passes.h - tlc compiler passes ----------------------------*- C++ -*-===//
#ifndef TL_COMPILER_PASSES_H
#define TL_COMPILER_PASSES_H

namespace mlir::tl {
/// Registers every tlc pass (and the default pipeline) with the global
/// registry so that tlc-opt and tlc share one list.
void registerTlPasses();
} // namespace mlir::tl

#endif // TL_COMPILER_PASSES_H
