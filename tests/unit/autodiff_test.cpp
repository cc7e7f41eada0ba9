// Every derivative rule against central finite differences of the reference
// evaluator in f64, on seeded random shapes and values.
#include "compiler/Evaluator/ReferenceEvaluator.h"
#include "compiler/Passes/Passes.h"

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"

#include "TestSupport.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <sstream>

using namespace mlir;
using tlc::HostTensor;

namespace {

struct Arg {
  std::string name;
  std::vector<int64_t> shape;
  double lo = -2, hi = 2;     // uniform range of random values
  bool param = true;          // false: a data input, no gradient
  std::string elem = "f64";
  std::vector<double> values; // fixed values (ids); random when empty
};

std::string tensorType(const std::vector<int64_t> &shape, const std::string &elem) {
  std::string t = "tensor<";
  for (int64_t d : shape) t += std::to_string(d) + "x";
  return t + elem + ">";
}

class AutodiffTest : public TlContextTest {
protected:

  /// `body` computes `%r` of shape `result` from the arguments. The loss is
  /// sum(%r * cw) with fixed random weights cw, so every element of %r
  /// matters; its gradient from tl-autodiff must match finite differences.
  void check(std::vector<Arg> args, const std::string &body,
             const std::vector<int64_t> &result, const std::string &resultElem = "f64") {
    args.push_back({"cw", result, -1, 1, false, resultElem});
    std::ostringstream src;
    src << "func.func @f(";
    for (size_t i = 0; i < args.size(); ++i)
      src << (i ? ", " : "") << "%" << args[i].name << ": "
          << tensorType(args[i].shape, args[i].elem) << " {tl."
          << (args[i].param ? "param" : "input") << " = \"" << args[i].name << "\"}";
    std::string rt = tensorType(result, resultElem);
    src << ") -> tensor<" << resultElem << "> {\n" << body << "\n  %m = tl.mul %r, %cw : " << rt << "\n";
    std::string last = "%m";
    std::vector<int64_t> shape = result;
    for (int64_t axis = static_cast<int64_t>(result.size()) - 1; axis >= 0; --axis) {
      std::string in = tensorType(shape, resultElem);
      shape.pop_back();
      std::string next = "%s" + std::to_string(axis);
      src << "  " << next << " = tl.reduce_sum " << last << ", axis = " << axis << " : " << in
          << " -> " << tensorType(shape, resultElem) << "\n";
      last = next;
    }
    src << "  return " << last << " : tensor<" << resultElem << ">\n}\n";

    OwningOpRef<ModuleOp> forward = parseSourceString<ModuleOp>(src.str(), &context);
    ASSERT_TRUE(forward) << diagnostics << src.str();
    OwningOpRef<ModuleOp> step = forward->clone();
    PassManager pm(&context);
    pm.addPass(tl::createTlAutodiff());
    ASSERT_TRUE(succeeded(pm.run(*step))) << diagnostics;
    auto lossFn = *forward->getOps<func::FuncOp>().begin();
    auto stepFn = *step->getOps<func::FuncOp>().begin();

    std::vector<HostTensor> values;
    for (const Arg &a : args) {
      HostTensor t(a.shape);
      std::uniform_real_distribution<double> u(a.lo, a.hi);
      if (!a.values.empty()) t.data = a.values;
      else for (double &x : t.data) x = u(rng);
      values.push_back(t);
    }
    auto grads = tl::evaluate(stepFn, values, tl::Precision::F64);
    ASSERT_TRUE(succeeded(grads)) << diagnostics;
    auto loss = [&](const std::vector<HostTensor> &v) {
      return (*tl::evaluate(lossFn, v, tl::Precision::F64))[0].data[0];
    };
    size_t g = 1;
    for (size_t i = 0; i < args.size(); ++i) {
      if (!args[i].param) continue;
      const HostTensor &ad = (*grads)[g++];
      ASSERT_EQ(ad.shape, args[i].shape) << args[i].name;
      for (int64_t k = 0; k < ad.numel(); ++k) {
        std::vector<HostTensor> plus = values, minus = values;
        double h = 1e-6 * std::max(1.0, std::abs(values[i].data[k]));
        plus[i].data[k] += h;
        minus[i].data[k] -= h;
        double fd = (loss(plus) - loss(minus)) / (2 * h);
        ASSERT_NEAR(ad.data[k], fd, 1e-6 * (1 + std::abs(fd)))
            << "d loss / d " << args[i].name << "[" << k << "]\n" << src.str();
      }
    }
  }

  std::vector<int64_t> randomShape(int rank) {
    std::vector<int64_t> s;
    for (int i = 0; i < rank; ++i) s.push_back(2 + static_cast<int64_t>(rng() % 3));
    return s;
  }

  std::mt19937 rng{20261128};
};

TEST_F(AutodiffTest, UnaryOps) {
  for (const char *op : {"neg", "exp", "log", "sqrt", "rsqrt", "sigmoid", "silu", "tanh", "sin", "cos"}) {
    std::vector<int64_t> s = randomShape(2);
    bool positive = std::string(op) == "log" || std::string(op) == "sqrt" || std::string(op) == "rsqrt";
    check({{"x", s, positive ? 0.3 : -2.0, 2.0}},
          std::string("  %r = tl.") + op + " %x : " + tensorType(s, "f64"), s);
  }
  std::vector<int64_t> s = randomShape(3);
  for (const char *e : {"2.0", "3.0", "-1.5", "0.5"})
    check({{"x", s, 0.2, 2.0}}, std::string("  %r = tl.pow %x, ") + e + " : " + tensorType(s, "f64"), s);
}

TEST_F(AutodiffTest, BinaryOpsAndSharedUses) {
  std::vector<int64_t> s = randomShape(2);
  std::string t = tensorType(s, "f64");
  for (const char *op : {"add", "sub", "mul", "div", "max", "min"})
    check({{"x", s, 0.5, 2.0}, {"y", s, 0.5, 2.0}},
          std::string("  %r = tl.") + op + " %x, %y : " + t, s);
  // x is used three times; its cotangents must be summed.
  check({{"x", s}}, "  %a = tl.mul %x, %x : " + t + "\n  %b = tl.exp %x : " + t +
                        "\n  %r = tl.sub %a, %b : " + t, s);
  // Only x is a parameter: y's cotangent is not needed.
  check({{"x", s}, {"y", s, -2, 2, false}}, "  %r = tl.mul %x, %y : " + t, s);
}

TEST_F(AutodiffTest, SelectCompareAndConvert) {
  std::vector<int64_t> s = {3, 4};
  check({{"x", s}, {"y", s}},
        "  %c = tl.cmp lt, %x, %y : tensor<3x4xf64>\n"
        "  %r = tl.select %c, %x, %y : tensor<3x4xi1>, tensor<3x4xf64>", s);
  check({{"x", s}},
        "  %a = tl.convert %x : tensor<3x4xf64> -> tensor<3x4xf32>\n"
        "  %b = tl.exp %a : tensor<3x4xf32>\n"
        "  %r = tl.convert %b : tensor<3x4xf32> -> tensor<3x4xf64>", s);
}

TEST_F(AutodiffTest, BroadcastOverNewAndUnitDims) {
  check({{"x", {3, 1}}}, "  %r = tl.broadcast %x, dims = [1, 2] : tensor<3x1xf64> -> tensor<2x3x4xf64>",
        {2, 3, 4});
  check({{"x", {4}}}, "  %r = tl.broadcast %x, dims = [1] : tensor<4xf64> -> tensor<3x4xf64>", {3, 4});
  check({{"x", {}}}, "  %r = tl.broadcast %x, dims = [] : tensor<f64> -> tensor<2x2xf64>", {2, 2});
}

TEST_F(AutodiffTest, ReductionsOverEachAxis) {
  std::vector<int64_t> s = randomShape(3);
  for (const char *op : {"reduce_sum", "reduce_mean", "reduce_max"})
    for (int axis = 0; axis < 3; ++axis) {
      std::vector<int64_t> out = s;
      out.erase(out.begin() + axis);
      check({{"x", s}},
            std::string("  %r = tl.") + op + " %x, axis = " + std::to_string(axis) + " : " +
                tensorType(s, "f64") + " -> " + tensorType(out, "f64"),
            out);
    }
}

TEST_F(AutodiffTest, MatmulWithEachTransposeFlag) {
  const int64_t B = 2, M = 3, K = 4, N = 2;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (int shared = 0; shared < 2; ++shared) {
        std::vector<int64_t> a = ta ? std::vector<int64_t>{B, K, M} : std::vector<int64_t>{B, M, K};
        std::vector<int64_t> b = tb ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N};
        if (!shared) b.insert(b.begin(), B);
        std::string attrs = ta && tb ? " {transpose_lhs, transpose_rhs}"
                            : ta     ? " {transpose_lhs}"
                            : tb     ? " {transpose_rhs}"
                                     : "";
        check({{"a", a}, {"b", b}},
              "  %r = tl.matmul %a, %b" + attrs + " : " + tensorType(a, "f64") + ", " +
                  tensorType(b, "f64") + " -> tensor<2x3x2xf64>",
              {B, M, N});
      }
  // Plain 2-D product.
  check({{"a", {3, 4}}, {"b", {4, 5}}},
        "  %r = tl.matmul %a, %b : tensor<3x4xf64>, tensor<4x5xf64> -> tensor<3x5xf64>", {3, 5});
}

TEST_F(AutodiffTest, DataMovement) {
  check({{"x", {2, 3, 4}}},
        "  %r = tl.transpose %x, perm = [2, 0, 1] : tensor<2x3x4xf64> -> tensor<4x2x3xf64>", {4, 2, 3});
  check({{"x", {2, 3, 4}}}, "  %r = tl.reshape %x : tensor<2x3x4xf64> -> tensor<6x4xf64>", {6, 4});
  check({{"x", {2, 5}}}, "  %r = tl.slice %x, axis = 1, start = 1, size = 3 : tensor<2x5xf64> -> tensor<2x3xf64>",
        {2, 3});
  check({{"x", {2, 5}}}, "  %r = tl.slice %x, axis = 0, start = 0, size = 1 : tensor<2x5xf64> -> tensor<1x5xf64>",
        {1, 5});
  check({{"x", {2, 2}}, {"y", {2, 3}}},
        "  %n = tl.neg %y : tensor<2x3xf64>\n"
        "  %r = tl.concat %x, %n, %x axis = 1 : tensor<2x2xf64>, tensor<2x3xf64>, tensor<2x2xf64> -> tensor<2x7xf64>",
        {2, 7});
}

TEST_F(AutodiffTest, GatherWithRepeatedIdsAndScatterAdd) {
  Arg ids{"ids", {2, 3}, 0, 0, false, "i32", {4, 1, 4, 0, 4, 1}};  // row 4 three times
  check({{"t", {5, 3}}, ids},
        "  %r = tl.gather %t[%ids] : tensor<5x3xf64>, tensor<2x3xi32> -> tensor<2x3x3xf64>", {2, 3, 3});
  check({{"u", {2, 3, 3}}, ids},
        "  %r = tl.scatter_add %u[%ids] : tensor<2x3x3xf64>, tensor<2x3xi32> -> tensor<5x3xf64>", {5, 3});
}

TEST_F(AutodiffTest, UnusedParameterGetsZeroGradient) {
  check({{"x", {3}}, {"unused", {2, 2}}}, "  %r = tl.exp %x : tensor<3xf64>", {3});
}

}  // namespace
