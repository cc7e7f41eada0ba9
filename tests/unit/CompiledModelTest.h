// A TlContextTest that compiles TinyLlama presets into artifacts with every
// entry point (tlc compile's path), its JIT kernel cache in the test's
// temporary directory.
#pragma once

#include "compiler/Driver/Compile.h"
#include "models/tinyllama.h"
#include "formats/artifact.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"

#include "TestSupport.h"

#include <cstdlib>
#include <string>

class CompiledModelTest : public TlContextTest {
protected:
  static void SetUpTestSuite() {
    std::string dir = ::testing::TempDir() + "tlc-kernel-cache";
    setenv("TLC_CACHE_DIR", dir.c_str(), 1);
  }

  /// `preset` with `overrides` (tlc emit's --set), compiled like tlc compile does.
  tlc::artifact::Artifact compileTinyLlama(const std::string &preset, const std::string &overrides,
                                           bool bf16 = false) {
    auto config = tlc::models::preset(preset);
    EXPECT_TRUE(config && !tlc::models::applyOverrides(*config, overrides));
    mlir::Builder b(&context);
    mlir::OwningOpRef<mlir::ModuleOp> m = tlc::models::buildTinyLlama(
        context, *config, bf16 ? mlir::Type(b.getBF16Type()) : mlir::Type(b.getF32Type()));
    mlir::tl::codegen::LoweringStats stats;
    auto a = mlir::tl::compileModel(*m, *m->getOps<mlir::func::FuncOp>().begin(), /*isLossFunction=*/true,
                                    /*printIr=*/false, /*verifyFusion=*/false, stats);
    EXPECT_TRUE(succeeded(a)) << diagnostics;
    return *a;
  }
};
