// The reference evaluator checked op by op against direct index arithmetic
// written independently here, on seeded random inputs.
#include "compiler/Evaluator/ReferenceEvaluator.h"
#include "dialects/tl/IR/TlOps.h"
#include "formats/half.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"

#include "TestSupport.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

using namespace mlir;
using tlc::HostTensor;

namespace {

class EvaluatorTest : public TlContextTest {
protected:

  /// Parses `body` (one func.func) and runs it on `args`.
  FailureOr<std::vector<HostTensor>> run(const std::string &body,
                                         const std::vector<HostTensor> &args,
                                         tl::Precision p = tl::Precision::F64) {
    module = parseSourceString<ModuleOp>(body, &context);
    if (!module) return failure();
    auto func = *module->getOps<func::FuncOp>().begin();
    return tl::evaluate(func, args, p);
  }
  HostTensor run1(const std::string &body, const std::vector<HostTensor> &args,
                  tl::Precision p = tl::Precision::F64) {
    auto r = run(body, args, p);
    EXPECT_TRUE(succeeded(r)) << diagnostics;
    return succeeded(r) ? (*r)[0] : HostTensor();
  }

  HostTensor random(std::vector<int64_t> shape, double lo = -2, double hi = 2) {
    HostTensor t(std::move(shape));
    std::uniform_real_distribution<double> u(lo, hi);
    for (double &x : t.data) x = u(rng);
    return t;
  }

  OwningOpRef<ModuleOp> module;
  std::mt19937 rng{2024};
};

TEST_F(EvaluatorTest, ElementwiseMath) {
  HostTensor x = random({3, 5}, 0.1, 3.0), y = random({3, 5}, 0.1, 3.0);
  struct Case {
    const char *op;
    double (*f)(double, double);
    bool binary;
  };
  const Case cases[] = {
      {"neg", [](double a, double) { return -a; }, false},
      {"exp", [](double a, double) { return std::exp(a); }, false},
      {"log", [](double a, double) { return std::log(a); }, false},
      {"sqrt", [](double a, double) { return std::sqrt(a); }, false},
      {"rsqrt", [](double a, double) { return 1 / std::sqrt(a); }, false},
      {"sigmoid", [](double a, double) { return 1 / (1 + std::exp(-a)); }, false},
      {"silu", [](double a, double) { return a / (1 + std::exp(-a)); }, false},
      {"tanh", [](double a, double) { return std::tanh(a); }, false},
      {"sin", [](double a, double) { return std::sin(a); }, false},
      {"cos", [](double a, double) { return std::cos(a); }, false},
      {"add", [](double a, double b) { return a + b; }, true},
      {"sub", [](double a, double b) { return a - b; }, true},
      {"mul", [](double a, double b) { return a * b; }, true},
      {"div", [](double a, double b) { return a / b; }, true},
      {"max", [](double a, double b) { return a > b ? a : b; }, true},
      {"min", [](double a, double b) { return a < b ? a : b; }, true},
  };
  for (const Case &c : cases) {
    std::string src = std::string("func.func @f(%x: tensor<3x5xf64>, %y: tensor<3x5xf64>) -> tensor<3x5xf64> {\n") +
                      "  %r = tl." + c.op + (c.binary ? " %x, %y" : " %x") +
                      " : tensor<3x5xf64>\n  return %r : tensor<3x5xf64>\n}";
    HostTensor r = run1(src, {x, y});
    for (int64_t i = 0; i < x.numel(); ++i)
      EXPECT_NEAR(r.data[i], c.f(x.data[i], y.data[i]), 1e-14 * (1 + std::abs(r.data[i]))) << c.op;
  }
  HostTensor p = run1(R"(func.func @f(%x: tensor<3x5xf64>) -> tensor<3x5xf64> {
    %r = tl.pow %x, 2.5 : tensor<3x5xf64>
    return %r : tensor<3x5xf64> })", {x});
  for (int64_t i = 0; i < x.numel(); ++i) EXPECT_DOUBLE_EQ(p.data[i], std::pow(x.data[i], 2.5));
  // Sigmoid must not overflow for large negative inputs.
  HostTensor big({2}, std::vector<double>{-800.0, 800.0});
  HostTensor s = run1(R"(func.func @f(%x: tensor<2xf64>) -> tensor<2xf64> {
    %r = tl.sigmoid %x : tensor<2xf64>
    return %r : tensor<2xf64> })", {big});
  EXPECT_EQ(s.data[0], 0.0);
  EXPECT_EQ(s.data[1], 1.0);
}

TEST_F(EvaluatorTest, BroadcastMapsDimsAndExpandsOnes) {
  HostTensor x = random({3, 1});
  HostTensor r = run1(R"(func.func @f(%x: tensor<3x1xf64>) -> tensor<2x3x4xf64> {
    %r = tl.broadcast %x, dims = [1, 2] : tensor<3x1xf64> -> tensor<2x3x4xf64>
    return %r : tensor<2x3x4xf64> })", {x});
  for (int a = 0; a < 2; ++a)
    for (int b = 0; b < 3; ++b)
      for (int c = 0; c < 4; ++c) EXPECT_EQ(r.data[(a * 3 + b) * 4 + c], x.data[b]);
}

TEST_F(EvaluatorTest, ReductionsOverEachAxis) {
  HostTensor x = random({2, 3, 4});
  const int64_t dims[3] = {2, 3, 4};
  for (int axis = 0; axis < 3; ++axis) {
    for (const char *kind : {"reduce_sum", "reduce_max", "reduce_mean"}) {
      std::vector<int64_t> out;
      for (int d = 0; d < 3; ++d)
        if (d != axis) out.push_back(dims[d]);
      std::string outType = "tensor<" + std::to_string(out[0]) + "x" + std::to_string(out[1]) + "xf64>";
      std::string src = "func.func @f(%x: tensor<2x3x4xf64>) -> " + outType + " {\n  %r = tl." +
                        kind + " %x, axis = " + std::to_string(axis) + " : tensor<2x3x4xf64> -> " +
                        outType + "\n  return %r : " + outType + "\n}";
      HostTensor r = run1(src, {x});
      int64_t k = 0;
      for (int i = 0; i < dims[0]; ++i)
        for (int j = 0; j < dims[1]; ++j)
          for (int l = 0; l < dims[2]; ++l) {
            int idx[3] = {i, j, l};
            if (idx[axis] != 0) continue;
            double sum = 0, mx = -INFINITY;
            for (int t = 0; t < dims[axis]; ++t) {
              idx[axis] = t;
              double v = x.data[(idx[0] * 3 + idx[1]) * 4 + idx[2]];
              sum += v;
              mx = std::max(mx, v);
            }
            double expect = std::string(kind) == "reduce_sum"   ? sum
                            : std::string(kind) == "reduce_max" ? mx
                                                                : sum / dims[axis];
            EXPECT_NEAR(r.data[k++], expect, 1e-14) << kind << " axis " << axis;
          }
    }
  }
}

TEST_F(EvaluatorTest, MatmulWithEachTransposeFlagAndSharedRhs) {
  const int B = 2, M = 3, K = 5, N = 4;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (int shared = 0; shared < 2; ++shared) {
        HostTensor a = random(ta ? std::vector<int64_t>{B, K, M} : std::vector<int64_t>{B, M, K});
        std::vector<int64_t> bshape = tb ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N};
        if (!shared) bshape.insert(bshape.begin(), B);
        HostTensor b = random(bshape);
        auto type = [](const std::vector<int64_t> &s) {
          std::string t = "tensor<";
          for (int64_t d : s) t += std::to_string(d) + "x";
          return t + "f64>";
        };
        std::string attrs = ta && tb ? "{transpose_lhs, transpose_rhs}"
                            : ta     ? "{transpose_lhs}"
                            : tb     ? "{transpose_rhs}"
                                     : "";
        std::string src = "func.func @f(%a: " + type(a.shape) + ", %b: " + type(b.shape) +
                          ") -> tensor<2x3x4xf64> {\n  %r = tl.matmul %a, %b " + attrs + " : " +
                          type(a.shape) + ", " + type(b.shape) +
                          " -> tensor<2x3x4xf64>\n  return %r : tensor<2x3x4xf64>\n}";
        HostTensor r = run1(src, {a, b});
        for (int bi = 0; bi < B; ++bi)
          for (int i = 0; i < M; ++i)
            for (int j = 0; j < N; ++j) {
              double acc = 0;
              for (int k = 0; k < K; ++k) {
                double av = ta ? a.data[(bi * K + k) * M + i] : a.data[(bi * M + i) * K + k];
                int64_t boff = shared ? 0 : bi * K * N;
                double bv = tb ? b.data[boff + j * K + k] : b.data[boff + k * N + j];
                acc += av * bv;
              }
              EXPECT_NEAR(r.data[(bi * M + i) * N + j], acc, 1e-13);
            }
      }
}

TEST_F(EvaluatorTest, DataMovement) {
  HostTensor x = random({2, 3, 4});
  HostTensor t = run1(R"(func.func @f(%x: tensor<2x3x4xf64>) -> tensor<4x2x3xf64> {
    %r = tl.transpose %x, perm = [2, 0, 1] : tensor<2x3x4xf64> -> tensor<4x2x3xf64>
    return %r : tensor<4x2x3xf64> })", {x});
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 3; ++j)
      for (int k = 0; k < 4; ++k) EXPECT_EQ(t.data[(k * 2 + i) * 3 + j], x.data[(i * 3 + j) * 4 + k]);

  // Rotate-half: concat(-x2, x1), then undo it with slices.
  HostTensor r = run1(R"(func.func @f(%x: tensor<2x3x4xf64>) -> tensor<2x3x4xf64> {
    %a = tl.slice %x, axis = 2, start = 0, size = 1 : tensor<2x3x4xf64> -> tensor<2x3x1xf64>
    %b = tl.slice %x, axis = 2, start = 1, size = 3 : tensor<2x3x4xf64> -> tensor<2x3x3xf64>
    %c = tl.concat %b, %a axis = 2 : tensor<2x3x3xf64>, tensor<2x3x1xf64> -> tensor<2x3x4xf64>
    %d = tl.reshape %c : tensor<2x3x4xf64> -> tensor<6x4xf64>
    %e = tl.reshape %d : tensor<6x4xf64> -> tensor<2x3x4xf64>
    return %e : tensor<2x3x4xf64> })", {x});
  for (int row = 0; row < 6; ++row)
    for (int k = 0; k < 4; ++k) EXPECT_EQ(r.data[row * 4 + k], x.data[row * 4 + (k + 1) % 4]);
}

TEST_F(EvaluatorTest, GatherRowsAndReportsBadIds) {
  HostTensor table = random({5, 3});
  HostTensor ids({2, 2}, std::vector<double>{4, 0, 4, 2});
  const char *src = R"(func.func @f(%t: tensor<5x3xf64>, %i: tensor<2x2xi32>) -> tensor<2x2x3xf64> {
    %r = tl.gather %t[%i] : tensor<5x3xf64>, tensor<2x2xi32> -> tensor<2x2x3xf64>
    return %r : tensor<2x2x3xf64> })";
  HostTensor r = run1(src, {table, ids});
  for (int p = 0; p < 4; ++p)
    for (int k = 0; k < 3; ++k)
      EXPECT_EQ(r.data[p * 3 + k], table.data[static_cast<int>(ids.data[p]) * 3 + k]);
  HostTensor bad({2, 2}, std::vector<double>{0, 5, 1, 1});
  EXPECT_TRUE(failed(run(src, {table, bad})));
  EXPECT_NE(diagnostics.find("id 5 at position 1 is outside the table's 5 rows"), std::string::npos);
}

TEST_F(EvaluatorTest, MasksIotaConstantsAndConvert) {
  HostTensor x = random({3, 3});
  HostTensor r = run1(R"(func.func @f(%x: tensor<3x3xf64>) -> tensor<3x3xf64> {
    %row = tl.iota axis = 0 : tensor<3x3xi32>
    %col = tl.iota axis = 1 : tensor<3x3xi32>
    %m = tl.cmp ge, %row, %col : tensor<3x3xi32>
    %z = tl.constant dense<0xFFF0000000000000> : tensor<3x3xf64>
    %r = tl.select %m, %x, %z : tensor<3x3xi1>, tensor<3x3xf64>
    return %r : tensor<3x3xf64> })", {x});
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j)
      EXPECT_EQ(r.data[i * 3 + j], i >= j ? x.data[i * 3 + j] : -INFINITY);

  HostTensor h = run1(R"(func.func @f(%x: tensor<3x3xf64>) -> tensor<3x3xf32> {
    %b = tl.convert %x : tensor<3x3xf64> -> tensor<3x3xbf16>
    %r = tl.convert %b : tensor<3x3xbf16> -> tensor<3x3xf32>
    return %r : tensor<3x3xf32> })", {x});
  for (int i = 0; i < 9; ++i)
    EXPECT_EQ(h.data[i], tlc::roundToBf16(static_cast<float>(x.data[i])));

  HostTensor c = run1(R"(func.func @f() -> tensor<2x2xf32> {
    %r = tl.constant dense<[[1.5, -2.0], [0.25, 3.0]]> : tensor<2x2xf32>
    return %r : tensor<2x2xf32> })", {});
  EXPECT_EQ(c.data, (std::vector<double>{1.5, -2.0, 0.25, 3.0}));
}

TEST_F(EvaluatorTest, F32ModeRoundsEveryResult) {
  HostTensor x({1}, std::vector<double>{1.0}), y({1}, std::vector<double>{1e-10});
  const char *src = R"(func.func @f(%x: tensor<1xf32>, %y: tensor<1xf32>) -> tensor<1xf32> {
    %r = tl.add %x, %y : tensor<1xf32>
    return %r : tensor<1xf32> })";
  EXPECT_EQ(run1(src, {x, y}, tl::Precision::F32).data[0], 1.0);
  EXPECT_EQ(run1(src, {x, y}, tl::Precision::F64).data[0], 1.0 + 1e-10);
}

TEST_F(EvaluatorTest, RejectsArgumentsOfTheWrongShape) {
  const char *src = R"(func.func @f(%x: tensor<2xf64>) -> tensor<2xf64> {
    return %x : tensor<2xf64> })";
  EXPECT_TRUE(failed(run(src, {HostTensor({3})})));
  EXPECT_NE(diagnostics.find("argument #0 does not have the shape"), std::string::npos);
  EXPECT_TRUE(failed(run(src, {})));
}

}  // namespace
