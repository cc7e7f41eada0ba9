// Translation validation of the fusion passes (compiler/Verify):
// - the differential tester over every fusion pass that has lit seeds, with
//   every single mutation of every seed (TLC_FUSION_PAIRS=N adds N random
//   pairs of mutations per seed, TLC_FUSION_TRIALS=N draws N inputs a case);
// - proof that it catches issue 8's miscompile: with perRowFactor's old
//   element-count test restored, rmsnorm and attention fusions change the
//   numbers and the tester reports the smallest such function;
// - the per-fusion check behind `--verify-fusion`, on the tiny model and on
//   the issue's example.
#include "compiler/Passes/Matchers.h"
#include "compiler/Passes/Passes.h"
#include "compiler/Verify/FusionCheck.h"
#include "compiler/Verify/FusionTester.h"
#include "models/tinyllama.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include "TestSupport.h"

#include <iostream>

using namespace mlir;
using namespace mlir::tl::validation;

namespace {

class FusionVerifyTest : public TlContextTest {
protected:
  FusionVerifyTest() {
    static bool registered = (tl::registerTlPasses(), true);
    (void)registered;
  }
  ~FusionVerifyTest() override { tl::match::setElementCountRowCheckForTesting(false); }

  std::vector<std::string> seedsOf(const std::string &pass) {
    for (auto &[flag, seeds] : discoverFusionSeeds(TL_LIT_PASSES_DIR))
      if (flag == pass) return seeds;
    return {};
  }
};

TEST_F(FusionVerifyTest, EveryFusionPassKeepsTheNumbers) {
  auto passes = discoverFusionSeeds(TL_LIT_PASSES_DIR);
  std::vector<std::string> flags;
  for (auto &[flag, seeds] : passes) flags.push_back(flag);
  for (const char *expected : {"tl-fuse-attention", "tl-fuse-cross-entropy", "tl-fuse-elementwise",
                               "tl-fuse-rmsnorm", "tl-fuse-rope", "tl-fuse-swiglu"})
    EXPECT_TRUE(llvm::is_contained(flags, expected)) << expected << " has no seeds";
  TesterOptions options = TesterOptions::fromEnvironment();
  for (auto &[flag, seeds] : passes) {
    TesterReport r = testFusionPass(context, flag, seeds, options);
    std::cout << r.summary() << "\n";
    EXPECT_TRUE(r.failures.empty()) << r.summary();
    EXPECT_GT(r.fused, r.seeds / 2) << flag << ": too few cases exercise the fusion";
    EXPECT_GT(r.cases, 2 * r.seeds) << flag << ": too few valid mutations";
  }
}

TEST_F(FusionVerifyTest, CatchesTheElementCountRowCheck) {
  tl::match::setElementCountRowCheckForTesting(true);
  for (const char *pass : {"tl-fuse-rmsnorm", "tl-fuse-attention"}) {
    TesterReport r = testFusionPass(context, pass, seedsOf(pass), TesterOptions());
    std::cout << r.summary() << "\n";
    EXPECT_FALSE(r.failures.empty()) << pass << ": the restored bug went unnoticed";
  }
}

constexpr const char *kPerColumn = R"mlir(
func.func @per_column(%x: tensor<4x4xf32>, %w: tensor<4xf32>) -> tensor<4x4xf32> {
  %0 = tl.pow %x, 2.0 : tensor<4x4xf32>
  %1 = tl.reduce_mean %0, axis = 1 : tensor<4x4xf32> -> tensor<4xf32>
  %eps = tl.constant dense<1.0e-5> : tensor<4xf32>
  %2 = tl.add %1, %eps : tensor<4xf32>
  %r = tl.rsqrt %2 : tensor<4xf32>
  %rb = tl.broadcast %r, dims = [1] : tensor<4xf32> -> tensor<4x4xf32>
  %n = tl.mul %x, %rb : tensor<4x4xf32>
  %wb = tl.broadcast %w, dims = [1] : tensor<4xf32> -> tensor<4x4xf32>
  %y = tl.mul %n, %wb : tensor<4x4xf32>
  return %y : tensor<4x4xf32>
}
)mlir";

TEST_F(FusionVerifyTest, VerifyFusionRefusesAFusionThatChangesTheNumbers) {
  tl::match::setElementCountRowCheckForTesting(true);
  OwningOpRef<ModuleOp> m = parseSourceString<ModuleOp>(kPerColumn, &context);
  ASSERT_TRUE(m);
  PassManager pm(&context);
  pm.addPass(tl::createTlFuseRmsNorm());
  RegionChecker checker;
  {
    ScopedFusionChecking scope(&checker);
    EXPECT_TRUE(failed(pm.run(*m)));
  }
  EXPECT_EQ(checker.mismatches, 1);
  EXPECT_NE(diagnostics.find("this fusion changes the numbers on random inputs"), std::string::npos)
      << diagnostics;
  bool fused = false;
  m->walk([&](tl::RmsNormOp) { fused = true; });
  EXPECT_FALSE(fused);
}

TEST_F(FusionVerifyTest, VerifyFusionChecksEveryFusionOfTheTinyModel) {
  auto config = tlc::models::preset("tiny");
  ASSERT_TRUE(static_cast<bool>(config));
  ASSERT_FALSE(static_cast<bool>(tlc::models::applyOverrides(*config, "layers=2,micro_batch=1")));
  OwningOpRef<ModuleOp> m = tlc::models::buildTinyLlama(context, *config, Builder(&context).getF32Type());
  PassManager pm(&context);
  tl::buildTrainPipeline(pm);
  RegionChecker checker;
  {
    ScopedFusionChecking scope(&checker);
    ASSERT_TRUE(succeeded(pm.run(*m))) << diagnostics;
  }
  std::cout << checker.summary() << "\n";
  // Per layer: rmsnorm or add_rmsnorm twice, swiglu, rope twice, attention,
  // and tl-fold-head-transposes' two ropes and attention; then the final norm
  // and cross-entropy.
  EXPECT_EQ(checker.fusions, 2 * 9 + 2);
  EXPECT_EQ(checker.checked, checker.fusions);
  EXPECT_EQ(checker.mismatches, 0);
  EXPECT_EQ(checker.skipped, 0);
}

} // namespace
