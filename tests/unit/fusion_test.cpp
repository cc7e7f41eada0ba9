// Fused vs unfused TinyLlama training steps through the reference evaluator:
// the default pipeline (forward fusion, autodiff, elementwise fusion) must
// compute the same loss and gradients as plain autodiff of the primitive
// graph, and must contain exactly the fused ops expected per layer.
#include "compiler/Evaluator/ReferenceEvaluator.h"
#include "compiler/Passes/Passes.h"
#include "models/tinyllama.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/Pass/PassManager.h"

#include <functional>

#include "TestSupport.h"

#include <cmath>
#include <random>

using namespace mlir;
using tlc::HostTensor;

namespace {

class FusionTest : public TlContextTest {
protected:
  using Passes = std::function<void(OpPassManager &)>;

  /// The primitive model after `before` (extra passes), then either plain
  /// autodiff or the whole default pipeline.
  OwningOpRef<ModuleOp> build(const std::string &overrides, bool fused,
                              const Passes &before = nullptr) {
    auto config = tlc::models::preset("tiny");
    EXPECT_TRUE(static_cast<bool>(config));
    EXPECT_FALSE(static_cast<bool>(tlc::models::applyOverrides(*config, overrides)));
    OwningOpRef<ModuleOp> m =
        tlc::models::buildTinyLlama(context, *config, Builder(&context).getF64Type());
    PassManager pm(&context);
    if (before) before(pm);
    if (fused) tl::buildTrainPipeline(pm);
    else pm.addPass(tl::createTlAutodiff());
    EXPECT_TRUE(succeeded(pm.run(*m))) << diagnostics;
    return m;
  }

  template <typename OpT> int count(ModuleOp m) {
    int n = 0;
    m.walk([&](OpT) { ++n; });
    return n;
  }

  /// Random fan-in-scaled weights and random tokens, evaluated in f64.
  std::vector<HostTensor> run(ModuleOp m, uint32_t seed) {
    auto func = *m.getOps<func::FuncOp>().begin();
    std::vector<HostTensor> args = randomModelArguments(func, seed);
    auto r = tl::evaluate(func, args, tl::Precision::F64);
    EXPECT_TRUE(succeeded(r)) << diagnostics;
    return succeeded(r) ? *r : std::vector<HostTensor>{};
  }

  void expectEquivalent(const std::string &overrides, const Passes &before = nullptr) {
    OwningOpRef<ModuleOp> plain = build(overrides, false);
    OwningOpRef<ModuleOp> fused = before ? build(overrides, false, before) : build(overrides, true);
    std::vector<HostTensor> a = run(*plain, 7), b = run(*fused, 7);
    ASSERT_EQ(a.size(), b.size());
    EXPECT_NEAR(a[0].data[0], b[0].data[0], 1e-12 * std::abs(a[0].data[0]));
    for (size_t i = 1; i < a.size(); ++i) {
      double diff = 0, norm = 0;
      for (int64_t k = 0; k < a[i].numel(); ++k) {
        diff += (a[i].data[k] - b[i].data[k]) * (a[i].data[k] - b[i].data[k]);
        norm += a[i].data[k] * a[i].data[k];
      }
      EXPECT_LT(std::sqrt(diff / norm), 1e-10) << "gradient #" << i;
    }
  }
};

TEST_F(FusionTest, GqaVariantMatchesUnfused) {
  expectEquivalent("layers=2,dim=64,heads=8,kv_heads=2,ffn=96,vocab=97,seq=16,micro_batch=2");
}

TEST_F(FusionTest, MhaVariantMatchesUnfused) {
  expectEquivalent("layers=1,dim=48,heads=4,kv_heads=4,ffn=80,vocab=97,seq=12,micro_batch=3");
}

TEST_F(FusionTest, TinyPresetMatchesUnfused) {
  expectEquivalent("vocab=97,micro_batch=1");  // tiny's shapes; a small vocab keeps it quick
}

TEST_F(FusionTest, FusedStepHasTheExpectedOpsPerLayer) {
  const int layers = 3;
  OwningOpRef<ModuleOp> m = build("layers=3,seq=48,micro_batch=2", true);  // head dim 32 != seq
  EXPECT_EQ(count<tl::RmsNormOp>(*m), 1);                 // the first layer's input norm
  EXPECT_EQ(count<tl::AddRmsNormOp>(*m), 2 * layers);     // every later norm takes its residual
  EXPECT_EQ(count<tl::RmsNormGradOp>(*m), 2 * layers + 1);
  EXPECT_EQ(count<tl::RopeOp>(*m), 2 * layers);           // q and k
  EXPECT_EQ(count<tl::RopeGradOp>(*m), 2 * layers);
  EXPECT_EQ(count<tl::AttentionOp>(*m), layers);
  EXPECT_EQ(count<tl::AttentionGradOp>(*m), layers);
  EXPECT_EQ(count<tl::CrossEntropyOp>(*m), 1);
  EXPECT_EQ(count<tl::CrossEntropyGradOp>(*m), 1);
  EXPECT_EQ(count<tl::SwiGluOp>(*m), layers);
  EXPECT_EQ(count<tl::SwiGluGradOp>(*m), layers);
  // No head transposes: rope and attention read [B, T, H, D] in place.
  EXPECT_EQ(count<tl::TransposeOp>(*m), 0);
  m->walk([&](tl::AttentionOp a) { EXPECT_TRUE(a.getBthd()); });
  // No T x T score tensor anywhere: attention never materialises them.
  m->walk([&](Operation *op) {
    for (Value v : op->getResults()) {
      auto t = cast<RankedTensorType>(v.getType());
      if (t.getRank() >= 2)
        EXPECT_FALSE(t.getShape().back() == 48 && t.getShape()[t.getRank() - 2] == 48)
            << "materialised scores in " << op->getName().getStringRef().str();
    }
  });
  // Nothing left of the primitive softmax or one-hot cross-entropy.
  EXPECT_EQ(count<tl::ReduceMaxOp>(*m), 0);
  EXPECT_EQ(count<tl::CmpOp>(*m), 0);
}

// The tutorial's worked example (docs/writing-a-fusion-pass.md).
TEST_F(FusionTest, SwiGluExampleMatchesUnfused) {
  const std::string config = "layers=2,dim=64,heads=8,kv_heads=2,ffn=96,vocab=97,seq=16,micro_batch=2";
  Passes swiglu = [](OpPassManager &pm) { pm.addPass(tl::createTlFuseSwiGlu()); };
  expectEquivalent(config, swiglu);
  OwningOpRef<ModuleOp> m = build(config, false, swiglu);
  EXPECT_EQ(count<tl::SwiGluOp>(*m), 2);
  EXPECT_EQ(count<tl::SwiGluGradOp>(*m), 2);
  EXPECT_EQ(count<tl::SiluOp>(*m), 0);
}

}  // namespace
