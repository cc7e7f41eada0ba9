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
#include <random>
#include <string>
#include <vector>

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

  /// The same from a function not known as a DSL model (its tl.model
  /// removed): an artifact without decode_step and forward_logits.
  tlc::artifact::Artifact compileWithoutModel(const std::string &preset, const std::string &overrides) {
    auto config = tlc::models::preset(preset);
    EXPECT_TRUE(config && !tlc::models::applyOverrides(*config, overrides));
    mlir::OwningOpRef<mlir::ModuleOp> m =
        tlc::models::buildTinyLlama(context, *config, mlir::Builder(&context).getF32Type());
    auto func = *m->getOps<mlir::func::FuncOp>().begin();
    func->removeAttr(mlir::tl::TLDialect::kModelAttrName);
    mlir::tl::codegen::LoweringStats stats;
    auto a = mlir::tl::compileModel(*m, func, true, false, /*verifyFusion=*/false, stats);
    EXPECT_TRUE(succeeded(a)) << diagnostics;
    return *a;
  }

  /// Random parameters in artifact order: vectors near 1, matrices around 0.
  static std::vector<std::vector<float>> randomParams(const tlc::artifact::Artifact &a, std::mt19937 &rng) {
    std::normal_distribution<double> normal(0.0, 1.0);
    std::vector<std::vector<float>> params;
    for (const auto &p : a.params) {
      std::vector<float> v(p.numel());
      for (float &x : v) x = static_cast<float>((p.shape.size() == 1 ? 1.0 : 0.0) + 0.3 * normal(rng));
      params.push_back(v);
    }
    return params;
  }
};
