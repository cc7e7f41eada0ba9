//===- CrossEntropy.cpp - cross-entropy and its backward -----------------===//
//
// Per row: log-sum-exp and the loss term (an out-of-range target fails),
// then their mean over the counted rows; the backward is elementwise over
// the logits with the row's saved log-sum-exp.
//
//===----------------------------------------------------------------------===//
#include "compiler/Codegen/GeneratorSupport.h"

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
    out.steps.push_back(k.rows(rows, [&](bool cuda) {
      // The row maximum: a warp's reduction on CUDA, a vectorised max on the CPU.
      const std::string rowMax =
          cuda ? rowLoop(cuda, vocab, fmt::format("      m = fmaxf(m, {});\n", logits.ld("base + j"))) +
                     "    m = warpMax(m);\n"
               : rowLoop(cuda, vocab, fmt::format("      const float x = {};\n      m = x > m ? x : m;\n",
                                                  logits.ld("base + j")),
                         "max : m");
      return fmt::format(R"(    const int64_t base = row * {vocab};
    float m = -TL_INF, z = 0.0f;
{rowMax}{sumExp}{reduceZ}    const float l = m + logf(z);
    const int64_t t = targets[row];
{laneZero}    {storeLse}
    if ({ignored}) {{ rowloss[row] = 0.0f; counted[row] = 0.0f; }}
    else if (t < 0 || t >= {vocab}) {{ TL_FAIL({errorCode}); rowloss[row] = 0.0f; counted[row] = 0.0f; }}
    else {{ rowloss[row] = l - {logit}; counted[row] = 1.0f; }}
)", arg("vocab", vocab), arg("rowMax", rowMax),
                         arg("sumExp", rowLoop(cuda, vocab, fmt::format("      z += expf({} - m);\n", logits.ld("base + j")),
                                               "+ : z")),
                         arg("reduceZ", sum(cuda, "z")),
                         arg("laneZero", cuda ? "    if (lane != 0) return;\n" : ""), arg("storeLse", lse.st("row", "l")),
                         arg("ignored", ignore ? "t == " + S(*ignore) : "false"), arg("errorCode", ctx.errorCode),
                         arg("logit", logits.ld("base + t")));
    }));
  }
  {
    Builder k(name + "_mean");
    Tensor loss = k.param("loss", op.getLoss(), true);
    Tensor rowLoss = k.scratch("rowloss", 0, false), counted = k.scratch("counted", 1, false);
    // One thread, in row order: the same mean on both targets.
    const std::string body = fmt::format(R"(  double s = 0.0, c = 0.0;
  for (int64_t r = 0; r < {rows}; ++r) {{ s += rowloss[r]; c += counted[r]; }}
  {store}
)", arg("rows", rows.expr), arg("store", loss.st("0", "(float)(s / c)")));
    out.steps.push_back(k.custom(body, body, 1, 1));
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
    const std::string body = fmt::format(R"(  float c = 0.0f;
  for (int64_t r = 0; r < {rows}; ++r) c += targets[r] != {ignore};
  count[0] = c;
)", arg("rows", rows.expr), arg("ignore", *ignore));
    out.steps.push_back(c.custom(body, body, 1, 1));
    count = "count[0]";
  }
  Builder k(name);
  Tensor d = k.param("dlogits", op.getResult(), true), g = k.param("g", op.getGrad(), false),
         logits = k.param("logits", op.getLogits(), false);
  k.ids("targets", op.getTargets());
  Tensor lse = k.param("lse", op.getLse(), false);
  if (ignore) k.scratch("count", 0, false);
  const std::string ignored = ignore ? "t == " + S(*ignore) : std::string("false");
  LoweredStep step = k.elementwise(ctx.count(op.getLogits(), n * vocab), fmt::format(R"(    const int64_t row = i / {vocab}, col = i % {vocab};
    const int64_t t = targets[row];
    if ({ignored}) {{ {zero} }}
    else {store}
)", arg("vocab", vocab), arg("ignored", ignored), arg("zero", d.st("i", "0.0f")),
      arg("store", d.st("i", fmt::format("{} / {} * (expf({} - {}) - (col == t ? 1.0f : 0.0f))", g.ld("0"), count,
                                         logits.ld("i"), lse.ld("row"))))));
  // CPU: per row, the target, scale and log-sum-exp once, then a
  // vectorised pass over the vocabulary.
  step.kernel.cpuLoop = fmt::format(R"({parallel}  for (int64_t row = 0; row < {rows}; ++row) {{
    const int64_t t = targets[row], base = row * {vocab};
    const float scale = {ignored}{g} / {count}, l = {lse};
    for (int64_t col = 0; col < {vocab}; ++col) {store}
  }}
)", arg("parallel", cpuParallelFor(n * vocab)), arg("rows", rows.expr), arg("vocab", vocab),
      arg("ignored", ignore ? "t == " + S(*ignore) + " ? 0.0f : " : std::string()), arg("g", g.ld("0")),
      arg("count", count), arg("lse", lse.ld("row")),
      arg("store", d.st("base + col", "scale * (expf(" + logits.ld("base + col") + " - l) - (col == t ? 1.0f : 0.0f))")));
  out.steps.push_back(step);
  return out;
}

} // namespace

void attachCrossEntropyKernels(MLIRContext &context) {
  attachGenerator<CrossEntropyOp, crossEntropy>(context);
  attachGenerator<CrossEntropyGradOp, crossEntropyGrad>(context);
}

} // namespace mlir::tl::codegen
