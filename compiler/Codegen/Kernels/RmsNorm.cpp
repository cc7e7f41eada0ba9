//===- RmsNorm.cpp - RMSNorm, add + RMSNorm and backward -----------------===//
//
// A block per row on CUDA (16-byte accesses, block reductions; BlockRows.h),
// a row per iteration on the CPU; the weight gradient sums columns in a
// fixed order on both. Math in f32, bf16 converted on load and store.
//
//===----------------------------------------------------------------------===//
#include "compiler/Codegen/Kernels/BlockRows.h"

#include <fmt/format.h>

namespace mlir::tl::codegen {
namespace {

using namespace detail;
using fmt::arg;

/// The CPU form of a row kernel: rows in parallel, `body` per row.
std::string cpuRows(const Count &rows, const std::string &body) {
  return "#pragma omp parallel for schedule(static)\n  for (int64_t row = 0; row < " + rows.expr + "; ++row) {\n" +
         body + "  }\n";
}

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
  std::string storeSum = sumOut ? "      " + ts.st("base + j", "v") + "\n" : "";
  std::string cpu = fmt::format(R"(    const int64_t base = row * {d};
    float ss = 0.0f;
{squares}    const float s = 1.0f / sqrtf(ss / {d}.0f + {eps});
    {storeRstd}
{scale})", arg("d", d), arg("squares", rowLoop(false, d, v + storeSum + "      ss += v * v;\n", "+ : ss")),
                                arg("eps", F(eps)), arg("storeRstd", tr.st("row", "s")),
                                arg("scale", rowLoop(false, d, v + "      " + ty.st("base + j", "v * s * " + tw.ld("j")) + "\n")));
  // CUDA: a block per row, the row held in registers between the sum of
  // squares and the scaling (one read of a and b, one write of y and sum).
  std::vector<Tensor> rowTensors = {ty, ta, tw};
  if (b) rowTensors.push_back(tb);
  if (sumOut) rowTensors.push_back(ts);
  RowWalk r = RowWalk::of(d, rowTensors);
  std::string first = RowWalk::load("v[k]", ta, "base + j");
  if (b)
    first += "      float vb[" + S(r.width) + "];\n" + RowWalk::load("vb", tb, "base + j") + r.each("        v[k][e] += vb[e];\n");
  if (sumOut) first += RowWalk::store(ts, "base + j", "v[k]");
  first += r.each("        ss += v[k][e] * v[k][e];\n");
  std::string second = "      float wv[" + S(r.width) + "];\n" + RowWalk::load("wv", tw, "j") +
                       r.each("        v[k][e] = v[k][e] * s * wv[e];\n") + RowWalk::store(ty, "base + j", "v[k]");
  std::string cuda = r.prologue(rows.expr) + r.decl("v") + "  float ss = 0.0f;\n" + r.hold(first) +
                     fmt::format("  const float s = 1.0f / sqrtf(blockSum(ss, red) / {d}.0f + {eps});\n"
                                 "  if (threadIdx.x == 0) {store}\n",
                                 arg("d", d), arg("eps", F(eps)), arg("store", tr.st("row", "s"))) +
                     r.hold(second);
  LoweredOp out;
  out.steps.push_back(k.custom(cpuRows(rows, cpu), cuda, rows.compiled, r.threads, RowWalk::kSharedBytes, rows.batched));
  return out;
}

LoweredOp rmsnormGrad(RmsNormGradOp op, const std::string &name, const KernelContext &ctx) {
  int64_t d = shapeOf(op.getInput()).back(), n = numel(op.getInput()) / d;
  // The rows, at run time: the dx kernel's and the weight gradient's sum.
  const Count rows = ctx.count(op.getInput(), n);
  LoweredOp out;
  Builder k(name + "_dx");
  Tensor dx = k.param("dx", op.getInputGrad(), true), g = k.param("g", op.getGrad(), false),
         x = k.param("x", op.getInput(), false), w = k.param("w", op.getWeight(), false),
         rs = k.param("rstd", op.getRstd(), false);
  // add_rmsnorm's backward: the residual's gradient added as dx is stored.
  Value residual = op.getResidualGrad();
  Tensor res = residual ? k.param("res", residual, false) : Tensor{};
  const std::string plusRes = residual ? " + " + res.ld("base + j") : "";
  std::string cpu = fmt::format(R"(    const int64_t base = row * {d};
    const float s = {rstd};
    float dot = 0.0f;
{dots}    dot /= {d}.0f;
{storeDx})", arg("d", d), arg("rstd", rs.ld("row")),
                                arg("dots", rowLoop(false, d, "      dot += " + g.ld("base + j") + " * " + w.ld("j") + " * " +
                                                                  x.ld("base + j") + ";\n", "+ : dot")),
                                arg("storeDx", rowLoop(false, d, "      " + dx.st("base + j", "s * (" + g.ld("base + j") + " * " +
                                                                                    w.ld("j") + " - " + x.ld("base + j") +
                                                                                    " * s * s * dot)" + plusRes) + "\n")));
  // CUDA: a block per row holding g, x and w in registers across the dot.
  std::vector<Tensor> rowTensors = {dx, g, x, w};
  if (residual) rowTensors.push_back(res);
  RowWalk r = RowWalk::of(d, rowTensors);
  std::string addRes = residual ? "      float rv[" + S(r.width) + "];\n" + RowWalk::load("rv", res, "base + j") +
                                      r.each("        gv[k][e] += rv[e];\n")
                                : "";
  std::string cuda = r.prologue(rows.expr) + r.decl("gv,xv,wv") + "  float dot = 0.0f;\n" +
                     r.hold(RowWalk::load("gv[k]", g, "base + j") + RowWalk::load("xv[k]", x, "base + j") +
                            RowWalk::load("wv[k]", w, "j") + r.each("        dot += gv[k][e] * wv[k][e] * xv[k][e];\n")) +
                     "  const float s = " + rs.ld("row") + ";\n  dot = blockSum(dot, red) / " + S(d) + ".0f;\n" +
                     r.hold(r.each("        gv[k][e] = s * (gv[k][e] * wv[k][e] - xv[k][e] * s * s * dot);\n") + addRes +
                            RowWalk::store(dx, "base + j", "gv[k]"));
  out.steps.push_back(k.custom(cpuRows(rows, cpu), cuda, rows.compiled, r.threads, RowWalk::kSharedBytes, rows.batched));

  // The weight gradient, dw[j] = sum over rows of g * x * rstd.
  // CUDA, two kernels: `chunks` blocks (times the blocks a row's width
  // needs) each sum a contiguous run of rows into a partial row, in 16-byte
  // vectors, then a fixed-order sum of the partials per column:
  // deterministic, and enough blocks to fill the GPU (a block per 32
  // columns alone left 64 blocks for TinyLlama's 2048).
  RowWalk cols = RowWalk::of(d, {g, x}, 256);
  const int64_t colBlocks = (d + cols.threads * cols.width - 1) / (cols.threads * cols.width);
  const int64_t chunks = std::clamp<int64_t>((264 + colBlocks - 1) / colBlocks, 1, n);
  out.scratchBytes = {chunks * d * 4};
  Builder c(name + "_dw");
  Tensor dw = c.param("dw", op.getWeightGrad(), true), g2 = c.param("g", op.getGrad(), false),
         x2 = c.param("x", op.getInput(), false), rs2 = c.param("rstd", op.getRstd(), false);
  Tensor part = c.scratch("partial", 0, true);
  std::string cudaPartial = fmt::format(R"(  const int64_t chunk = blockIdx.x / {colBlocks};
  const int64_t j = ((int64_t)(blockIdx.x % {colBlocks}) * {threads} + threadIdx.x) * {w};
  if (j >= {d}) return;
  const int64_t lo = chunk * {rows} / {chunks}, hi = (chunk + 1) * {rows} / {chunks};
  float acc[{w}], gv[{w}], xv[{w}];
#pragma unroll
  for (int e = 0; e < {w}; ++e) acc[e] = 0.0f;
#pragma unroll 4
  for (int64_t r = lo; r < hi; ++r) {{
    const float s = {rstd};
    tlLoad(gv, g + r * {d} + j);
    tlLoad(xv, x + r * {d} + j);
#pragma unroll
    for (int e = 0; e < {w}; ++e) acc[e] += gv[e] * xv[e] * s;
  }}
  tlStore(partial + chunk * {d} + j, acc);
)", arg("colBlocks", colBlocks), arg("threads", cols.threads), arg("w", cols.width), arg("d", d),
                                        arg("rows", rows.expr), arg("chunks", chunks), arg("rstd", rs2.ld("r")));
  // CPU: a column sum walked row by row (contiguous, vectorised) in a fixed
  // number of row chunks, summed in order: deterministic for any thread
  // count. It writes dw itself; the second step is CUDA's.
  const int64_t cpuChunks = std::min<int64_t>(16, n);
  const std::string at = "r * " + S(d) + " + j";
  std::string cpuDw = fmt::format(R"(  float *p0 = (float *)malloc(sizeof(float) * {partSize});
{parallel}  for (int64_t c = 0; c < {chunks}; ++c) {{
    float *p = p0 + c * {d};
    for (int64_t j = 0; j < {d}; ++j) p[j] = 0.0f;
    for (int64_t r = c * {rows} / {chunks}; r < (c + 1) * {rows} / {chunks}; ++r) {{
      const float s = {rstd};
      for (int64_t j = 0; j < {d}; ++j) p[j] += {g} * {x} * s;
    }}
  }}
  for (int64_t j = 0; j < {d}; ++j) {{
    float acc = 0.0f;
    for (int64_t c = 0; c < {chunks}; ++c) acc += p0[c * {d} + j];
    {store}
  }}
  free(p0);
)", arg("partSize", cpuChunks * d), arg("parallel", cpuParallelFor(n * d)), arg("chunks", cpuChunks), arg("d", d),
      arg("rows", rows.expr), arg("rstd", rs2.ld("r")), arg("g", g2.ld(at)), arg("x", x2.ld(at)), arg("store", dw.st("j", "acc")));
  out.steps.push_back(c.custom(cpuDw, cudaPartial, colBlocks * chunks, cols.threads));

  // The partials' sum: a block per 32 columns, its 8 warps each summing
  // every 8th chunk, then the 8 in order.
  Builder f(name + "_dw_sum");
  Tensor dw2 = f.param("dw", op.getWeightGrad(), true);
  f.scratch("partial", 0, false);
  std::string cudaSum = fmt::format(R"(  extern __shared__ float tiles[];
  const int64_t j = (int64_t)blockIdx.x * 32 + threadIdx.x % 32;
  const int group = threadIdx.x / 32;
  float acc = 0.0f;
  if (j < {d})
    for (int64_t c = group; c < {chunks}; c += 8) acc += partial[c * {d} + j];
  tiles[threadIdx.x] = acc;
  __syncthreads();
  if (group == 0 && j < {d}) {{
    float total = 0.0f;
    for (int k = 0; k < 8; ++k) total += tiles[k * 32 + threadIdx.x];
    {store}
  }}
)", arg("d", d), arg("chunks", chunks), arg("store", dw2.st("j", "total")));
  out.steps.push_back(f.custom("  // dw: the CPU's first step wrote it\n", cudaSum, (d + 31) / 32, 256, 256 * 4));
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
