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

LoweredOp layernorm(LayerNormOp op, const std::string &name, const KernelContext &ctx) {
  int64_t d = shapeOf(op.getInput()).back();
  const Count rows = ctx.count(op.getInput(), numel(op.getInput()) / d);
  Builder k(name);
  Tensor y = k.param("y", op.getResult(), true), mean = k.param("mean", op.getMean(), true),
         rs = k.param("rstd", op.getRstd(), true), x = k.param("x", op.getInput(), false),
         w = k.param("w", op.getWeight(), false), b = k.param("b", op.getBias(), false);
  LoweredOp out;
  out.steps.push_back(k.rows(rows, [&](bool cuda) {
    return fmt::format(R"(    const int64_t base = row * {d};
    float m = 0.0f, var = 0.0f;
{sumX}{reduceM}    m /= {d}.0f;
{sumSquares}{reduceVar}    const float s = 1.0f / sqrtf(var / {d}.0f + {eps});
{storeMean}{storeRstd}{normalise})",
        arg("d", d), arg("sumX", rowLoop(cuda, d, fmt::format("      m += {};\n", x.ld("base + j")))),
        arg("reduceM", sum(cuda, "m")),
        arg("sumSquares", rowLoop(cuda, d, fmt::format("      const float c = {} - m;\n      var += c * c;\n",
                                                       x.ld("base + j")))),
        arg("reduceVar", sum(cuda, "var")), arg("eps", F(op.getEps().convertToDouble())),
        arg("storeMean", once(cuda, mean.st("row", "m"))), arg("storeRstd", once(cuda, rs.st("row", "s"))),
        arg("normalise", rowLoop(cuda, d, fmt::format("      {}\n", y.st("base + j", fmt::format("({} - m) * s * {} + {}",
                                                                                            x.ld("base + j"), w.ld("j"),
                                                                                            b.ld("j")))))));
  }));
  return out;
}

LoweredOp layernormGrad(LayerNormGradOp op, const std::string &name, const KernelContext &ctx) {
  int64_t d = shapeOf(op.getInput()).back();
  const Count rows = ctx.count(op.getInput(), numel(op.getInput()) / d);
  LoweredOp out;
  Builder k(name + "_dx");
  Tensor dx = k.param("dx", op.getInputGrad(), true), g = k.param("g", op.getGrad(), false),
         x = k.param("x", op.getInput(), false), w = k.param("w", op.getWeight(), false),
         mean = k.param("mean", op.getMean(), false), rs = k.param("rstd", op.getRstd(), false);
  const std::string xhat = fmt::format("({} - m) * s", x.ld("base + j"));
  out.steps.push_back(k.rows(rows, [&](bool cuda) {
    return fmt::format(R"(    const int64_t base = row * {d};
    const float m = {mean}, s = {rstd};
    float mgw = 0.0f, mgwx = 0.0f;
{sums}{reduce}    mgw /= {d}.0f;
    mgwx /= {d}.0f;
{storeDx})",
        arg("d", d), arg("mean", mean.ld("row")), arg("rstd", rs.ld("row")),
        arg("sums", rowLoop(cuda, d, fmt::format("      const float gw = {} * {};\n      mgw += gw;\n      mgwx += gw * {};\n",
                                                 g.ld("base + j"), w.ld("j"), xhat))),
        arg("reduce", sum(cuda, "mgw") + sum(cuda, "mgwx")),
        arg("storeDx", rowLoop(cuda, d, fmt::format("      {}\n",
                                                    dx.st("base + j", fmt::format("s * ({} * {} - mgw - {} * mgwx)",
                                                                                  g.ld("base + j"), w.ld("j"), xhat))))));
  }));
  // A thread per column summing over the rows in order (deterministic).
  Builder c(name + "_dwdb");
  Tensor dw = c.param("dw", op.getWeightGrad(), true), db = c.param("db", op.getBiasGrad(), true),
         g2 = c.param("g", op.getGrad(), false), x2 = c.param("x", op.getInput(), false),
         m2 = c.param("mean", op.getMean(), false), r2 = c.param("rstd", op.getRstd(), false);
  const std::string at = fmt::format("r * {} + i", d);
  out.steps.push_back(c.elementwise(Count{d, S(d), false}, fmt::format(R"(    float aw = 0.0f, ab = 0.0f;
    for (int64_t r = 0; r < {rows}; ++r) {{
      const float gv = {g};
      aw += gv * ({x} - {mean}) * {rstd};
      ab += gv;
    }}
    {storeDw}
    {storeDb}
)", arg("rows", rows.expr), arg("g", g2.ld(at)), arg("x", x2.ld(at)), arg("mean", m2.ld("r")), arg("rstd", r2.ld("r")),
                                                   arg("storeDw", dw.st("i", "aw")), arg("storeDb", db.st("i", "ab")))));
  return out;
}

} // namespace

void attachLayerNormKernels(MLIRContext &context) {
  attachGenerator<LayerNormOp, layernorm>(context);
  attachGenerator<LayerNormGradOp, layernormGrad>(context);
}

} // namespace mlir::tl::codegen
