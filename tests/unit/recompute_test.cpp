// tl-recompute keeps the numbers and lowers the planned memory:
// - the differential tester (compiler/Verify) on the pass's lit seeds and
//   every mutation of them, in each mode and under a budget;
// - the fused tiny TinyLlama step (f64 reference evaluator, random weights and
//   tokens) gives bitwise the same loss and gradients with recomputation;
// - its planned arena falls from none to auto to full, each decision lowers
//   the estimated peak, and a budget is met by the estimate.
#include "compiler/Codegen/Lowering.h"
#include "compiler/Evaluator/ReferenceEvaluator.h"
#include "compiler/Passes/Passes.h"
#include "compiler/Passes/Recompute.h"
#include "compiler/Verify/FusionTester.h"
#include "models/tinyllama.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"
#include "llvm/Support/MemoryBuffer.h"

#include "TestSupport.h"

#include <iostream>
#include <random>

using namespace mlir;
using tlc::HostTensor;

namespace {

class RecomputeTest : public TlContextTest {
protected:
  RecomputeTest() {
    static bool registered = (tl::registerTlPasses(), true);
    (void)registered;
  }

  /// The tiny model's fused training step with tl-recompute in the pipeline.
  OwningOpRef<ModuleOp> build(tl::RecomputeMode mode, int64_t budget, tl::RecomputeReport *report,
                              Type dtype) {
    auto config = tlc::models::preset("tiny");
    EXPECT_TRUE(static_cast<bool>(config));
    // Three layers, so that the first layers' values wait through the others,
    // and a small vocabulary, so that activations (not logits) make the peak.
    EXPECT_FALSE(static_cast<bool>(tlc::models::applyOverrides(*config, "layers=3,micro_batch=2,seq=64,vocab=128")));
    OwningOpRef<ModuleOp> m = tlc::models::buildTinyLlama(context, *config, dtype);
    PassManager pm(&context);
    tl::buildTrainPipeline(pm, tl::createTlRecomputePass(mode, budget, false, report));
    EXPECT_TRUE(succeeded(pm.run(*m))) << diagnostics;
    return m;
  }

  std::vector<HostTensor> run(ModuleOp m, uint32_t seed) {
    auto func = *m.getOps<func::FuncOp>().begin();
    std::vector<HostTensor> args = randomModelArguments(func, seed);
    auto r = tl::evaluate(func, args, tl::Precision::F64);
    EXPECT_TRUE(succeeded(r)) << diagnostics;
    return succeeded(r) ? *r : std::vector<HostTensor>{};
  }

  int64_t arenaOf(ModuleOp m) {
    tl::codegen::LoweringStats stats;
    auto a = tl::codegen::lowerToArtifact(*m.getOps<func::FuncOp>().begin(), stats);
    EXPECT_TRUE(succeeded(a)) << diagnostics;
    return succeeded(a) ? a->arenaBytes : 0;
  }
};

TEST_F(RecomputeTest, EveryModeKeepsTheNumbersOfItsSeedsAndTheirMutations) {
  std::vector<std::string> seeds;
  auto text = llvm::MemoryBuffer::getFile(std::string(TL_LIT_PASSES_DIR) + "/tl-recompute.mlir");
  ASSERT_TRUE(static_cast<bool>(text));
  seeds = tl::validation::splitSeeds((*text)->getBuffer());
  ASSERT_EQ(seeds.size(), 2u);
  tl::validation::TesterOptions options = tl::validation::TesterOptions::fromEnvironment();
  options.trials = std::max(options.trials, 2);
  for (const char *pass : {"tl-recompute{mode=auto}", "tl-recompute{mode=full}",
                           "tl-recompute{mode=auto budget=2400}"}) {
    tl::validation::TesterReport r = tl::validation::testFusionPass(context, pass, seeds, options);
    std::cout << r.summary() << "\n";
    EXPECT_TRUE(r.failures.empty()) << r.summary();
    EXPECT_GT(r.fused, 2) << pass << ": too few cases recompute anything";
    EXPECT_GT(r.cases, 10) << pass << ": too few valid mutations";
  }
}

TEST_F(RecomputeTest, TheTinyStepComputesBitwiseTheSameWithRecomputation) {
  Type f64 = Builder(&context).getF64Type();
  OwningOpRef<ModuleOp> kept = build(tl::RecomputeMode::None, 0, nullptr, f64);
  std::vector<HostTensor> reference = run(*kept, 11);
  for (tl::RecomputeMode mode : {tl::RecomputeMode::Auto, tl::RecomputeMode::Full}) {
    tl::RecomputeReport report;
    OwningOpRef<ModuleOp> m = build(mode, 0, &report, f64);
    EXPECT_FALSE(report.decisions.empty()) << tl::recomputeModeName(mode);
    std::vector<HostTensor> got = run(*m, 11);
    ASSERT_EQ(got.size(), reference.size());
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_EQ(got[i].data, reference[i].data) << tl::recomputeModeName(mode) << ": result " << i;
  }
}

TEST_F(RecomputeTest, PlannedMemoryFallsAndABudgetIsMet) {
  Type f32 = Builder(&context).getF32Type();
  tl::RecomputeReport none, automatic, full;
  int64_t arenaNone = arenaOf(*build(tl::RecomputeMode::None, 0, &none, f32));
  int64_t arenaAuto = arenaOf(*build(tl::RecomputeMode::Auto, 0, &automatic, f32));
  int64_t arenaFull = arenaOf(*build(tl::RecomputeMode::Full, 0, &full, f32));
  std::cout << "arena none " << arenaNone << ", auto " << arenaAuto << ", full " << arenaFull << "\n";
  EXPECT_TRUE(none.decisions.empty());
  EXPECT_EQ(none.peakBefore, none.peakAfter);
  EXPECT_LT(arenaAuto, arenaNone);
  EXPECT_LT(arenaFull, arenaAuto);
  EXPECT_LT(automatic.peakAfter, automatic.peakBefore);
  EXPECT_LT(full.peakAfter, automatic.peakAfter);
  // Auto picks only cheap recomputations without a budget; full also GEMMs.
  for (const auto &d : automatic.decisions) EXPECT_TRUE(d.cheap) << d.op;
  EXPECT_GT(full.recomputedFlops, automatic.recomputedFlops);
  EXPECT_GT(full.stepFlops, 0);
  // The planner's estimate is the planned arena within 10% (it does not see
  // kernels' scratch buffers or the first fit's fragmentation).
  EXPECT_NEAR(static_cast<double>(none.peakBefore), static_cast<double>(arenaNone), 0.1 * arenaNone);
  // A budget between auto's and full's peak is met with fewer FLOPs than full.
  int64_t budget = (automatic.peakAfter + full.peakAfter) / 2;
  tl::RecomputeReport budgeted;
  build(tl::RecomputeMode::Auto, budget, &budgeted, f32);
  EXPECT_LE(budgeted.peakAfter, budget);
  EXPECT_LE(budgeted.recomputedFlops, full.recomputedFlops);
  EXPECT_GT(budgeted.recomputedFlops, automatic.recomputedFlops);
}

} // namespace
