//===- Passes.h - tlc compiler passes ----------------------------*- C++ -*-===//
#ifndef TL_COMPILER_PASSES_H
#define TL_COMPILER_PASSES_H

#include "dialects/tl/IR/TlOps.h"

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

} // namespace mlir::tl

#endif // TL_COMPILER_PASSES_H
