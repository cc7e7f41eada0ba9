//===- CrossEntropy.cpp - cross-entropy and its backward -----------------===//
//
// Per row: log-sum-exp and the loss term (an out-of-range target fails),
// then their mean over the counted rows; the backward is elementwise over
// the logits with the row's saved log-sum-exp. CUDA runs a block per row
// (one pass, 16-byte vectors) and block reductions: no single-thread loops.
//
//===----------------------------------------------------------------------===//
#include "compiler/Codegen/Kernels/BlockRows.h"

#include <fmt/format.h>

namespace mlir::tl::codegen {
namespace {

using namespace detail;
using fmt::arg;

LoweredOp crossEntropy(CrossEntropyOp op, const std::string &name, const KernelContext &ctx) {
  int64_t n = shapeOf(op.getLogits())[0], vocab = shapeOf(op.getLogits())[1];
  const Count rows = ctx.count(op.getLogits(), n);
  std::optional<int64_t> ignore;
  if (auto attr = op.getIgnoreIndex()) ignore = static_cast<int64_t>(*attr);
  LoweredOp out;
  out.scratchBytes = {n * 4, n * 4};  // per-row loss, counted flag
  {
    Builder k(name + "_rows");
    k.k.checksErrors = true;
    Tensor lse = k.param("lse", op.getLse(), true), logits = k.param("logits", op.getLogits(), false);
    k.ids("targets", op.getTargets());
    Tensor rowLoss = k.scratch("rowloss", 0, true), counted = k.scratch("counted", 1, true);
    // CPU: the row maximum (vectorised), then the sum of exponentials.
    const std::string tail = fmt::format(R"(    const int64_t t = targets[row];
    {storeLse}
    if ({ignored}) {{ rowloss[row] = 0.0f; counted[row] = 0.0f; }}
    else if (t < 0 || t >= {vocab}) {{ TL_FAIL({errorCode}); rowloss[row] = 0.0f; counted[row] = 0.0f; }}
    else {{ rowloss[row] = l - {logit}; counted[row] = 1.0f; }}
)", arg("vocab", vocab), arg("storeLse", lse.st("row", "l")), arg("ignored", ignore ? "t == " + S(*ignore) : "false"),
                                         arg("errorCode", ctx.errorCode), arg("logit", logits.ld("base + t")));
    const std::string cpu = fmt::format(R"(#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < {rows}; ++row) {{
    const int64_t base = row * {vocab};
    float m = -TL_INF, z = 0.0f;
{rowMax}{sumExp}    const float l = m + logf(z);
{tail}  }}
)", arg("rows", rows.expr), arg("vocab", vocab),
                                        arg("rowMax", rowLoop(false, vocab, fmt::format("      const float x = {};\n      m = x > m ? x : m;\n",
                                                                                        logits.ld("base + j")), "max : m")),
                                        arg("sumExp", rowLoop(false, vocab, fmt::format("      z += expf({} - m);\n", logits.ld("base + j")),
                                                              "+ : z")),
                                        arg("tail", tail));
    // CUDA: a block per row, one pass over the logits in 16-byte vectors:
    // each thread keeps a running maximum and its sum of exponentials
    // (rescaled when the maximum grows), then the block merges them.
    RowWalk r = RowWalk::of(vocab, {logits});
    const std::string cuda = r.prologue(rows.expr) + "  float m = -TL_INF, z = 0.0f;\n" +
                             r.stream("      float xv[" + S(r.width) + "];\n" + RowWalk::load("xv", logits, "base + j") +
                                      "      float mNew = m;\n" + r.each("        mNew = fmaxf(mNew, xv[e]);\n") +
                                      "      z *= expf(m - mNew);\n" + r.each("        z += expf(xv[e] - mNew);\n") +
                                      "      m = mNew;\n") +
                             "  const float mRow = blockMax(m, red);\n"
                             "  const float l = mRow + logf(blockSum(m == -TL_INF ? 0.0f : z * expf(m - mRow), red));\n"
                             "  if (threadIdx.x != 0) return;\n" + tail;
    out.steps.push_back(k.custom(cpu, cuda, rows.compiled, r.threads, RowWalk::kSharedBytes, rows.batched));
  }
  {
    Builder k(name + "_mean");
    Tensor loss = k.param("loss", op.getLoss(), true);
    Tensor rowLoss = k.scratch("rowloss", 0, false), counted = k.scratch("counted", 1, false);
    // CPU: one thread in row order. CUDA: a block, each thread summing
    // every 256th row, then a fixed tree (deterministic).
    const std::string cpu = fmt::format(R"(  double s = 0.0, c = 0.0;
  for (int64_t r = 0; r < {rows}; ++r) {{ s += rowloss[r]; c += counted[r]; }}
  {store}
)", arg("rows", rows.expr), arg("store", loss.st("0", "(float)(s / c)")));
    const std::string cuda = fmt::format(R"(  extern __shared__ float tiles[];
  double *s = (double *)tiles, *c = s + 256;
  const int t = threadIdx.x;
  double ls = 0.0, lc = 0.0;
  for (int64_t r = t; r < {rows}; r += 256) {{ ls += rowloss[r]; lc += counted[r]; }}
  s[t] = ls;
  c[t] = lc;
  __syncthreads();
  for (int w = 128; w > 0; w >>= 1) {{
    if (t < w) {{ s[t] += s[t + w]; c[t] += c[t + w]; }}
    __syncthreads();
  }}
  if (t == 0) {store}
)", arg("rows", rows.expr), arg("store", loss.st("0", "(float)(s[0] / c[0])")));
    out.steps.push_back(k.custom(cpu, cuda, 1, 256, 256 * 16));
  }
  return out;
}

LoweredOp crossEntropyGrad(CrossEntropyGradOp op, const std::string &name, const KernelContext &ctx) {
  int64_t n = shapeOf(op.getLogits())[0], vocab = shapeOf(op.getLogits())[1];
  const Count rows = ctx.count(op.getLogits(), n);
  std::optional<int64_t> ignore;
  if (auto attr = op.getIgnoreIndex()) ignore = static_cast<int64_t>(*attr);
  LoweredOp out;
  std::string count = "(float)" + rows.expr;
  if (ignore) {
    out.scratchBytes.push_back(4);
    Builder c(name + "_count");
    c.ids("targets", op.getTargets());
    Tensor cnt = c.scratch("count", 0, true);
    const std::string cpu = fmt::format(R"(  float c = 0.0f;
  for (int64_t r = 0; r < {rows}; ++r) c += targets[r] != {ignore};
  count[0] = c;
)", arg("rows", rows.expr), arg("ignore", *ignore));
    // CUDA: a block; counts below 2^24 add exactly in f32, in any order.
    const std::string cuda = fmt::format(R"(  extern __shared__ float red[];
  float c = 0.0f;
  for (int64_t r = threadIdx.x; r < {rows}; r += 256) c += targets[r] != {ignore};
  c = blockSum(c, red);
  if (threadIdx.x == 0) count[0] = c;
)", arg("rows", rows.expr), arg("ignore", *ignore));
    out.steps.push_back(c.custom(cpu, cuda, 1, 256, RowWalk::kSharedBytes));
    count = "count[0]";
  }
  Builder k(name);
  Tensor d = k.param("dlogits", op.getResult(), true), g = k.param("g", op.getGrad(), false),
         logits = k.param("logits", op.getLogits(), false);
  k.ids("targets", op.getTargets());
  Tensor lse = k.param("lse", op.getLse(), false);
  if (ignore) k.scratch("count", 0, false);
  const std::string ignored = ignore ? "t == " + S(*ignore) : std::string("false");
  // CPU: per row, the target, scale and log-sum-exp once, then a
  // vectorised pass over the vocabulary.
  const std::string scale = fmt::format("{ignored}{g} / {count}", arg("ignored", ignore ? ignored + " ? 0.0f : " : std::string()),
                                        arg("g", g.ld("0")), arg("count", count));
  const std::string cpu = fmt::format(R"({parallel}  for (int64_t row = 0; row < {rows}; ++row) {{
    const int64_t t = targets[row], base = row * {vocab};
    const float scale = {scale}, l = {lse};
    for (int64_t col = 0; col < {vocab}; ++col) {store}
  }}
)", arg("parallel", cpuParallelFor(n * vocab)), arg("rows", rows.expr), arg("vocab", vocab), arg("scale", scale),
      arg("lse", lse.ld("row")),
      arg("store", d.st("base + col", "scale * (expf(" + logits.ld("base + col") + " - l) - (col == t ? 1.0f : 0.0f))")));
  // CUDA: the same, a block per row in 16-byte vectors.
  RowWalk r = RowWalk::of(vocab, {d, logits});
  const std::string cuda = r.prologue(rows.expr) +
                           fmt::format("  const int64_t t = targets[row];\n  const float scale = {}, l = {};\n", scale,
                                       lse.ld("row")) +
                           r.stream("      float xv[" + S(r.width) + "];\n" + RowWalk::load("xv", logits, "base + j") +
                                    r.each("        xv[e] = scale * (expf(xv[e] - l) - (j + e == t ? 1.0f : 0.0f));\n") +
                                    RowWalk::store(d, "base + j", "xv"));
  out.steps.push_back(k.custom(cpu, cuda, rows.compiled, r.threads, RowWalk::kSharedBytes, rows.batched));
  return out;
}

} // namespace

void attachCrossEntropyKernels(MLIRContext &context) {
  attachGenerator<CrossEntropyOp, crossEntropy>(context);
  attachGenerator<CrossEntropyGradOp, crossEntropyGrad>(context);
}

} // namespace mlir::tl::codegen
