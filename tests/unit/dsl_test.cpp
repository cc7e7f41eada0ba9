#include "compiler/Evaluator/ReferenceEvaluator.h"
#include "dialects/tl/IR/TlOps.h"
#include "models/dsl.h"
#include "models/nn.h"

#include "mlir/IR/Verifier.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace mlir;
using namespace tlc::dsl;
using tlc::HostTensor;

namespace {

func::FuncOp onlyFunc(ModuleOp m) { return *m.getOps<func::FuncOp>().begin(); }

template <typename OpT> int count(ModuleOp m) {
  int n = 0;
  m.walk([&](OpT) { ++n; });
  return n;
}

TEST(Dsl, BroadcastingScalarsAndNamedArguments) {
  MLIRContext ctx;
  Graph g(ctx, "f", Builder(&ctx).getF64Type());
  Tensor x = g.input("x", {2, 3}, g.floatType());
  Tensor w = g.param("w", {3});
  Tensor y = sum(x * w + 1.0, -1);  // [2, 3] * [3] broadcasts
  OwningOpRef<ModuleOp> m = g.finish(mean(y, 0));
  ASSERT_TRUE(succeeded(verify(*m)));
  func::FuncOp f = onlyFunc(*m);
  EXPECT_EQ(f.getArgAttrOfType<StringAttr>(0, "tl.input").getValue(), "x");
  EXPECT_EQ(f.getArgAttrOfType<StringAttr>(1, "tl.param").getValue(), "w");
  EXPECT_EQ(count<tl::BroadcastOp>(*m), 1);  // only w; the scalar is a full-shape constant
  EXPECT_EQ(count<tl::ConstantOp>(*m), 1);

  HostTensor xs({2, 3}, std::vector<double>{1, 2, 3, 4, 5, 6});
  HostTensor ws({3}, std::vector<double>{0.5, -1, 2});
  auto r = tl::evaluate(f, {xs, ws}, tl::Precision::F64);
  ASSERT_TRUE(succeeded(r));
  // rows: 0.5-2+6+3 = 7.5, 2-5+12+3 = 12 -> mean 9.75
  EXPECT_DOUBLE_EQ((*r)[0].data[0], 9.75);
}

TEST(Dsl, KeepdimReductionsBroadcastBack) {
  MLIRContext ctx;
  Graph g(ctx, "softmax", Builder(&ctx).getF64Type());
  Tensor x = g.input("x", {2, 5}, g.floatType());
  OwningOpRef<ModuleOp> m = g.finish(tlc::nn::softmax(x, -1));
  ASSERT_TRUE(succeeded(verify(*m)));
  std::mt19937 rng(3);
  std::normal_distribution<double> n;
  HostTensor xs({2, 5});
  for (double &v : xs.data) v = 10 * n(rng);
  auto r = tl::evaluate(onlyFunc(*m), {xs}, tl::Precision::F64);
  ASSERT_TRUE(succeeded(r));
  for (int row = 0; row < 2; ++row) {
    double z = 0;
    for (int j = 0; j < 5; ++j) z += std::exp(xs.data[row * 5 + j]);
    for (int j = 0; j < 5; ++j)
      EXPECT_NEAR((*r)[0].data[row * 5 + j], std::exp(xs.data[row * 5 + j]) / z, 1e-15);
  }
}

TEST(Dsl, ScopesNameOpLocations) {
  MLIRContext ctx;
  Graph g(ctx, "f", Builder(&ctx).getF32Type());
  Tensor x = g.input("x", {4}, g.floatType());
  Tensor y;
  {
    Graph::Scope s(g, "model.layers.3.mlp");
    y = silu(x);
  }
  Tensor z = exp(y);
  auto yLoc = dyn_cast<NameLoc>(y.value().getLoc());
  ASSERT_TRUE(yLoc);
  EXPECT_EQ(yLoc.getName().getValue(), "model.layers.3.mlp");
  EXPECT_EQ(cast<NameLoc>(z.value().getLoc()).getName().getValue(), "f");
  g.finish(sum(z, 0));
}

TEST(DslDeathTest, IncompatibleShapesStopWithTheLocation) {
  EXPECT_DEATH(
      {
        MLIRContext ctx;
        Graph g(ctx, "f", Builder(&ctx).getF32Type());
        Graph::Scope s(g, "model.layers.0.self_attn");
        Tensor a = g.input("a", {2, 3}, g.floatType());
        Tensor b = g.input("b", {4}, g.floatType());
        (void)(a + b);
      },
      "model definition error at .*model.layers.0.self_attn.*do not broadcast");
}

}  // namespace
