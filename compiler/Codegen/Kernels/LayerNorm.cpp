//===- LayerNorm.cpp - LayerNorm and its backward ------------------------===//
//
// Mean and variance per row (a warp per row on CUDA), then the weight and
// bias gradients as column sums.
//
//===----------------------------------------------------------------------===//
#include "compiler/Codegen/GeneratorSupport.h"

#include <fmt/format.h>

namespace mlir::tl::codegen {
namespace {

using namespace detail;
using fmt::arg;

LoweredOp layernorm(LayerNormOp op, const std::string &name) {
  int64_t d = shapeOf(op.getInput()).back(), r = numel(op.getInput()) / d;
  Builder k(name);
  Tensor y = k.param("y", op.getResult(), true), mean = k.param("mean", op.getMean(), true),
         rs = k.param("rstd", op.getRstd(), true), x = k.param("x", op.getInput(), false),
         w = k.param("w", op.getWeight(), false), b = k.param("b", op.getBias(), false);
  LoweredOp out;
  out.steps.push_back(k.rows(r, [&](bool cuda) {
    return "    const int64_t base = row * " + S(d) + ";\n    float m = 0.0f, var = 0.0f;\n" +
           rowLoop(cuda, d, "      m += " + x.ld("base + j") + ";\n") + sum(cuda, "m") +
           "    m /= " + S(d) + ".0f;\n" +
           rowLoop(cuda, d, "      const float c = " + x.ld("base + j") + " - m;\n      var += c * c;\n") +
           sum(cuda, "var") + "    const float s = 1.0f / sqrtf(var / " + S(d) + ".0f + " +
           F(op.getEps().convertToDouble()) + ");\n" + once(cuda, mean.st("row", "m")) +
           once(cuda, rs.st("row", "s")) +
           rowLoop(cuda, d, "      " + y.st("base + j", "(" + x.ld("base + j") + " - m) * s * " +
                                                  w.ld("j") + " + " + b.ld("j")) + "\n");
  }));
  return out;
}

LoweredOp layernormGrad(LayerNormGradOp op, const std::string &name) {
  int64_t d = shapeOf(op.getInput()).back(), r = numel(op.getInput()) / d;
  LoweredOp out;
  Builder k(name + "_dx");
  Tensor dx = k.param("dx", op.getInputGrad(), true), g = k.param("g", op.getGrad(), false),
         x = k.param("x", op.getInput(), false), w = k.param("w", op.getWeight(), false),
         mean = k.param("mean", op.getMean(), false), rs = k.param("rstd", op.getRstd(), false);
  std::string xhat = "(" + x.ld("base + j") + " - m) * s";
  out.steps.push_back(k.rows(r, [&](bool cuda) {
    return "    const int64_t base = row * " + S(d) + ";\n    const float m = " + mean.ld("row") +
           ", s = " + rs.ld("row") + ";\n    float mgw = 0.0f, mgwx = 0.0f;\n" +
           rowLoop(cuda, d, "      const float gw = " + g.ld("base + j") + " * " + w.ld("j") +
                                ";\n      mgw += gw;\n      mgwx += gw * " + xhat + ";\n") +
           sum(cuda, "mgw") + sum(cuda, "mgwx") + "    mgw /= " + S(d) + ".0f;\n    mgwx /= " +
           S(d) + ".0f;\n" +
           rowLoop(cuda, d, "      " + dx.st("base + j", "s * (" + g.ld("base + j") + " * " + w.ld("j") +
                                                    " - mgw - " + xhat + " * mgwx)") + "\n");
  }));
  Builder c(name + "_dwdb");
  Tensor dw = c.param("dw", op.getWeightGrad(), true), db = c.param("db", op.getBiasGrad(), true),
         g2 = c.param("g", op.getGrad(), false), x2 = c.param("x", op.getInput(), false),
         m2 = c.param("mean", op.getMean(), false), r2 = c.param("rstd", op.getRstd(), false);
  std::string at = "r * " + S(d) + " + i";
  out.steps.push_back(c.elementwise(
      d, "    float aw = 0.0f, ab = 0.0f;\n    for (int64_t r = 0; r < " + S(r) + "; ++r) {\n" +
             "      const float gv = " + g2.ld(at) + ";\n      aw += gv * (" + x2.ld(at) + " - " +
             m2.ld("r") + ") * " + r2.ld("r") + ";\n      ab += gv;\n    }\n    " + dw.st("i", "aw") +
             "\n    " + db.st("i", "ab") + "\n"));
  return out;
}

LoweredOp layernormKernels(LayerNormOp op, const std::string &name, int) { return layernorm(op, name); }
LoweredOp layernormGradKernels(LayerNormGradOp op, const std::string &name, int) { return layernormGrad(op, name); }

} // namespace

void attachLayerNormKernels(MLIRContext &context) {
  attachGenerator<LayerNormOp, layernormKernels>(context);
  attachGenerator<LayerNormGradOp, layernormGradKernels>(context);
}

} // namespace mlir::tl::codegen
