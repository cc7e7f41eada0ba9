// A GoogleTest fixture with an MLIRContext holding the tl dialects, whose
// diagnostics are collected in `diagnostics` for assertions.
#pragma once

#include "compiler/Evaluator/HostTensor.h"
#include "dialects/tl/IR/TlOps.h"
#include "formats/half.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/MLIRContext.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

class TlContextTest : public ::testing::Test {
protected:
  TlContextTest() {
    mlir::DialectRegistry registry;
    mlir::tl::registerTlDialects(registry);
    context.appendDialectRegistry(registry);
    context.loadAllAvailableDialects();
    context.getDiagEngine().registerHandler([this](mlir::Diagnostic &d) {
      diagnostics += d.str() + "\n";
      return mlir::success();
    });
  }

  mlir::MLIRContext context;
  std::string diagnostics;
};

/// Random arguments for a model function: token ids below 97, gains near 1,
/// other tensors fan-in scaled so that activations and logits stay O(1).
inline std::vector<tlc::HostTensor> randomModelArguments(mlir::func::FuncOp func, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<tlc::HostTensor> args;
  for (mlir::BlockArgument arg : func.getArguments()) {
    auto type = mlir::cast<mlir::RankedTensorType>(arg.getType());
    tlc::HostTensor t({type.getShape().begin(), type.getShape().end()});
    if (type.getElementType().isInteger(32)) {
      for (double &x : t.data) x = static_cast<double>(rng() % 97);
    } else {
      double scale = 1.0 / std::sqrt(static_cast<double>(type.getShape().back()));
      for (double &x : t.data) x = type.getRank() == 1 ? 1 + 0.2 * normal(rng) : scale * normal(rng);
    }
    args.push_back(t);
  }
  return args;
}

/// Arguments drawn from `uniform` as the bf16 kernel tests use them: ids in
/// [0, idRange), bf16 tensors' values rounded to bf16, other floats to f32.
template <typename Rng, typename Distribution>
std::vector<tlc::HostTensor> roundedRandomArguments(mlir::func::FuncOp func, Rng &rng, Distribution &uniform,
                                                    int64_t idRange) {
  std::vector<tlc::HostTensor> args;
  for (mlir::BlockArgument a : func.getArguments()) {
    auto t = mlir::cast<mlir::RankedTensorType>(a.getType());
    tlc::HostTensor h({t.getShape().begin(), t.getShape().end()});
    for (double &x : h.data) {
      if (t.getElementType().isInteger(32)) x = static_cast<double>(rng() % idRange);
      else if (t.getElementType().isBF16()) x = tlc::roundToBf16(static_cast<float>(uniform(rng)));
      else x = static_cast<float>(uniform(rng));
    }
    args.push_back(h);
  }
  return args;
}
