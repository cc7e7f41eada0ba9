//===- RmsNorm.cpp - RMSNorm, add + RMSNorm and backward -----------------===//
//
// A row per warp on CUDA (shuffle reductions), a row per iteration on the
// CPU; the weight gradient sums columns in a fixed order on both. Math in
// f32, bf16 converted on load and store.
//
//===----------------------------------------------------------------------===//
#include "compiler/Codegen/GeneratorSupport.h"

#include <fmt/format.h>

namespace mlir::tl::codegen {
namespace {

using namespace detail;
using fmt::arg;

LoweredOp rmsnorm(const std::string &name, const KernelContext &ctx, Value sumOut, Value y, Value rstd,
                  Value a, Value b, Value w, double eps) {
  int64_t d = shapeOf(y).back();
  const Count rows = ctx.count(y, numel(y) / d);
  Builder k(name);
  Tensor ts = sumOut ? k.param("sum", sumOut, true) : Tensor{};
  Tensor ty = k.param("y", y, true), tr = k.param("rstd", rstd, true);
  Tensor ta = k.param("a", a, false), tb = b ? k.param("b", b, false) : Tensor{};
  Tensor tw = k.param("w", w, false);
  std::string v = "      const float v = " + ta.ld("base + j") + (b ? " + " + tb.ld("base + j") : "") + ";\n";
  LoweredOp out;
  std::string storeSum = sumOut ? "      " + ts.st("base + j", "v") + "\n" : "";
  out.steps.push_back(k.rows(rows, [&](bool cuda) {
    return fmt::format(R"(    const int64_t base = row * {d};
    float ss = 0.0f;
{squares}{sum}    const float s = 1.0f / sqrtf(ss / {d}.0f + {eps});
{storeRstd}{scale})", arg("d", d), arg("squares", rowLoop(cuda, d, v + storeSum + "      ss += v * v;\n", "+ : ss")),
                       arg("sum", sum(cuda, "ss")), arg("eps", F(eps)), arg("storeRstd", once(cuda, tr.st("row", "s"))),
                       arg("scale", rowLoop(cuda, d, v + "      " + ty.st("base + j", "v * s * " + tw.ld("j")) + "\n")));
  }));
  return out;
}

LoweredOp rmsnormGrad(RmsNormGradOp op, const std::string &name, const KernelContext &ctx) {
  int64_t d = shapeOf(op.getInput()).back(), r = numel(op.getInput()) / d;
  // The rows, at run time: the dx kernel's and the weight gradient's sum.
  const Count rows = ctx.count(op.getInput(), r);
  LoweredOp out;
  Builder k(name + "_dx");
  Tensor dx = k.param("dx", op.getInputGrad(), true), g = k.param("g", op.getGrad(), false),
         x = k.param("x", op.getInput(), false), w = k.param("w", op.getWeight(), false),
         rs = k.param("rstd", op.getRstd(), false);
  out.steps.push_back(k.rows(rows, [&](bool cuda) {
    return fmt::format(R"(    const int64_t base = row * {d};
    const float s = {rstd};
    float dot = 0.0f;
{dots}{sum}    dot /= {d}.0f;
{storeDx})", arg("d", d), arg("rstd", rs.ld("row")),
                       arg("dots", rowLoop(cuda, d, "      dot += " + g.ld("base + j") + " * " + w.ld("j") + " * " +
                                                        x.ld("base + j") + ";\n", "+ : dot")),
                       arg("sum", sum(cuda, "dot")),
                       arg("storeDx", rowLoop(cuda, d, "      " + dx.st("base + j", "s * (" + g.ld("base + j") + " * " +
                                                                          w.ld("j") + " - " + x.ld("base + j") +
                                                                          " * s * s * dot)") + "\n")));
  }));
  Builder c(name + "_dw");
  Tensor dw = c.param("dw", op.getWeightGrad(), true), g2 = c.param("g", op.getGrad(), false),
         x2 = c.param("x", op.getInput(), false), rs2 = c.param("rstd", op.getRstd(), false);
  // CUDA: a block per 32 columns; its 8 warps walk every 8th row (a warp
  // reads 32 adjacent columns) and the 8 partial sums are added in a fixed
  // order: deterministic, with 8 times the threads of a thread per column
  // (a thread per column left 8 blocks for TinyLlama's 2048 columns).
  const std::string column = "r * " + S(d) + " + i";
  std::string cuda = fmt::format(R"(  extern __shared__ float tiles[];
  const int64_t i = (int64_t)blockIdx.x * 32 + threadIdx.x % 32;
  const int64_t group = threadIdx.x / 32;
  float acc = 0.0f;
  if (i < {d})
    for (int64_t r = group; r < {rows}; r += 8)
      acc += {g} * {x} * {rstd};
  tiles[threadIdx.x] = acc;
  __syncthreads();
  if (group == 0 && i < {d}) {{
    float total = 0.0f;
    for (int k = 0; k < 8; ++k) total += tiles[k * 32 + threadIdx.x];
    {store}
  }}
)", arg("d", d), arg("rows", rows.expr), arg("g", g2.ld(column)), arg("x", x2.ld(column)), arg("rstd", rs2.ld("r")),
                                 arg("store", dw.st("i", "total")));
  // CPU: a column sum walked row by row (contiguous, vectorised) in a fixed
  // number of row chunks, summed in order: deterministic for any thread count.
  const int64_t chunks = std::min<int64_t>(16, r);
  const std::string at = "r * " + S(d) + " + j";
  std::string cpu = fmt::format(R"(  float *part = (float *)malloc(sizeof(float) * {partSize});
{parallel}  for (int64_t c = 0; c < {chunks}; ++c) {{
    float *p = part + c * {d};
    for (int64_t j = 0; j < {d}; ++j) p[j] = 0.0f;
    for (int64_t r = c * {rows} / {chunks}; r < (c + 1) * {rows} / {chunks}; ++r) {{
      const float s = {rstd};
      for (int64_t j = 0; j < {d}; ++j) p[j] += {g} * {x} * s;
    }}
  }}
  for (int64_t j = 0; j < {d}; ++j) {{
    float acc = 0.0f;
    for (int64_t c = 0; c < {chunks}; ++c) acc += part[c * {d} + j];
    {store}
  }}
  free(part);
)", arg("partSize", chunks * d), arg("parallel", cpuParallelFor(r * d)), arg("chunks", chunks), arg("d", d),
      arg("rows", rows.expr), arg("rstd", rs2.ld("r")), arg("g", g2.ld(at)), arg("x", x2.ld(at)), arg("store", dw.st("j", "acc")));
  out.steps.push_back(c.custom(cpu, cuda, (d + 31) / 32, 256, 256 * sizeof(float)));
  return out;
}

LoweredOp rmsnormKernels(RmsNormOp n, const std::string &name, const KernelContext &ctx) {
  return rmsnorm(name, ctx, Value(), n.getResult(), n.getRstd(), n.getInput(), Value(), n.getWeight(),
                 n.getEps().convertToDouble());
}

LoweredOp addRmsnormKernels(AddRmsNormOp n, const std::string &name, const KernelContext &ctx) {
  return rmsnorm(name, ctx, n.getSum(), n.getResult(), n.getRstd(), n.getLhs(), n.getRhs(), n.getWeight(),
                 n.getEps().convertToDouble());
}

LoweredOp rmsnormGradKernels(RmsNormGradOp op, const std::string &name, const KernelContext &ctx) {
  return rmsnormGrad(op, name, ctx);
}

} // namespace

void attachRmsNormKernels(MLIRContext &context) {
  attachGenerator<RmsNormOp, rmsnormKernels>(context);
  attachGenerator<AddRmsNormOp, addRmsnormKernels>(context);
  attachGenerator<RmsNormGradOp, rmsnormGradKernels>(context);
}

} // namespace mlir::tl::codegen
