#include "compiler/Driver/ModelFunction.h"
#include "dialects/tl/IR/TlOps.h"
#include "models/tinyllama.h"

#include "mlir/IR/Verifier.h"

#include <gtest/gtest.h>

using namespace mlir;
namespace models = tlc::models;

namespace {

models::LlamaConfig presetOrDie(const std::string &name) {
  auto c = models::preset(name);
  EXPECT_TRUE(static_cast<bool>(c));
  return *c;
}

std::string errorText(llvm::Error e) { return e ? llvm::toString(std::move(e)) : ""; }

TEST(TinyLlama, PresetParameterCounts) {
  EXPECT_EQ(presetOrDie("1.1b").parameterCount(), 1100048384);
  EXPECT_EQ(presetOrDie("124m").parameterCount(), 124668672);
  EXPECT_EQ(presetOrDie("tiny").parameterCount(), 4917504);
  auto unknown = models::preset("7b");
  ASSERT_FALSE(static_cast<bool>(unknown));
  EXPECT_EQ(llvm::toString(unknown.takeError()), "unknown preset '7b' (known: tiny, 124m, 1.1b)");
}

TEST(TinyLlama, OverridesAndValidation) {
  models::LlamaConfig c = presetOrDie("tiny");
  EXPECT_EQ(errorText(models::applyOverrides(c, "layers=2, dim=64,seq=32,norm_eps=1e-6")), "");
  EXPECT_EQ(c.layers, 2);
  EXPECT_EQ(c.dim, 64);
  EXPECT_EQ(c.seq, 32);
  EXPECT_DOUBLE_EQ(c.normEps, 1e-6);
  EXPECT_EQ(c.preset, "tiny+overrides");

  EXPECT_NE(errorText(models::applyOverrides(c, "depth=3")).find("unknown key 'depth'"),
            std::string::npos);
  EXPECT_NE(errorText(models::applyOverrides(c, "dim=0")).find("positive integer"),
            std::string::npos);
  EXPECT_NE(errorText(models::applyOverrides(c, "dim=abc")).find("positive integer"),
            std::string::npos);
  EXPECT_NE(errorText(models::applyOverrides(c, "rope_theta=-1")).find("positive number"),
            std::string::npos);
  EXPECT_NE(errorText(models::applyOverrides(c, "dim")).find("key=value"), std::string::npos);

  models::LlamaConfig bad = presetOrDie("tiny");
  bad.heads = 7;
  EXPECT_EQ(errorText(models::validate(bad)), "heads (7) must divide dim (256)");
  bad = presetOrDie("tiny");
  bad.kvHeads = 3;
  EXPECT_EQ(errorText(models::validate(bad)), "kv_heads (3) must divide heads (8)");
  bad = presetOrDie("tiny");
  bad.dim = 24, bad.heads = 8;  // head dim 3
  EXPECT_NE(errorText(models::validate(bad)).find("must be even"), std::string::npos);
}

TEST(TinyLlama, EmitsHfNamedParametersInStateDictOrder) {
  MLIRContext ctx;
  models::LlamaConfig c = presetOrDie("tiny");
  ASSERT_EQ(errorText(models::applyOverrides(c, "layers=2,seq=16,micro_batch=2")), "");
  OwningOpRef<ModuleOp> m = models::buildTinyLlama(ctx, c, Builder(&ctx).getF32Type());
  ASSERT_TRUE(succeeded(verify(*m)));
  func::FuncOp f = tl::findModelFunction(*m);
  ASSERT_TRUE(f);
  auto sig = tl::readSignature(f);
  ASSERT_TRUE(succeeded(sig));
  ASSERT_EQ(sig->params.size(), 2u + 9 * 2 + 1);
  EXPECT_EQ(sig->params.front().name, "model.embed_tokens.weight");
  EXPECT_EQ(sig->params[1].name, "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(sig->params[2].name, "model.layers.0.self_attn.k_proj.weight");
  EXPECT_EQ(sig->params[2].shape, (std::vector<int64_t>{64, 256}));  // 2 KV heads x 32
  EXPECT_EQ(sig->params[9].name, "model.layers.0.post_attention_layernorm.weight");
  EXPECT_EQ(sig->params.back().name, "lm_head.weight");
  EXPECT_EQ(sig->parameterCount(), c.parameterCount());
  ASSERT_EQ(sig->inputs.size(), 2u);
  EXPECT_EQ(sig->inputs[0].name, "tokens");
  EXPECT_EQ(sig->inputs[0].shape, (std::vector<int64_t>{2, 16}));
  EXPECT_EQ(sig->inputs[1].dtype, "i32");

  auto back = models::configFromAttr(f->getAttr("tl.model"));
  ASSERT_TRUE(static_cast<bool>(back));
  EXPECT_EQ(back->layers, 2);
  EXPECT_EQ(back->kvHeads, 2);
  EXPECT_DOUBLE_EQ(back->ropeTheta, 10000.0);
  EXPECT_EQ(back->parameterCount(), c.parameterCount());
}

TEST(TinyLlama, OneAttentionAndTwoNormsPerLayerInPrimitiveOps) {
  MLIRContext ctx;
  models::LlamaConfig c = presetOrDie("tiny");
  ASSERT_EQ(errorText(models::applyOverrides(c, "layers=3,seq=8,micro_batch=1")), "");
  OwningOpRef<ModuleOp> m = models::buildTinyLlama(ctx, c, Builder(&ctx).getF32Type());
  int rsqrt = 0, matmul = 0, gather = 0, silu = 0;
  m->walk([&](Operation *op) {
    rsqrt += isa<tl::RsqrtOp>(op);
    matmul += isa<tl::MatmulOp>(op);
    gather += isa<tl::GatherOp>(op);
    silu += isa<tl::SiluOp>(op);
  });
  EXPECT_EQ(rsqrt, 2 * 3 + 1);       // two RMSNorms per layer + final
  EXPECT_EQ(matmul, 9 * 3 + 1);      // q k v o, QK^T, PV, gate up down; lm_head
  EXPECT_EQ(gather, 1);
  EXPECT_EQ(silu, 3);
}

}  // namespace
