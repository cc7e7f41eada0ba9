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

LoweredOp crossEntropy(CrossEntropyOp op, const std::string &name, int errorCode) {
  int64_t n = shapeOf(op.getLogits())[0], vocab = shapeOf(op.getLogits())[1];
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
    std::string V = S(vocab);
    out.steps.push_back(k.rows(n, [&](bool cuda) {
      std::string ignored = ignore ? "t == " + S(*ignore) : "false";
      return "    const int64_t base = row * " + V + ";\n    float m = -TL_INF, z = 0.0f;\n" +
             (cuda ? rowLoop(cuda, vocab, "      m = fmaxf(m, " + logits.ld("base + j") + ");\n") +
                         "    m = warpMax(m);\n"
                   : rowLoop(cuda, vocab, "      const float x = " + logits.ld("base + j") + ";\n      m = x > m ? x : m;\n",
                             "max : m")) +
             rowLoop(cuda, vocab, "      z += expf(" + logits.ld("base + j") + " - m);\n", "+ : z") + sum(cuda, "z") +
             fmt::format(R"(    const float l = m + logf(z);
    const int64_t t = targets[row];
{laneZero}    {storeLse}
    if ({ignored}) {{ rowloss[row] = 0.0f; counted[row] = 0.0f; }}
    else if (t < 0 || t >= {vocab}) {{ TL_FAIL({errorCode}); rowloss[row] = 0.0f; counted[row] = 0.0f; }}
    else {{ rowloss[row] = l - {logit}; counted[row] = 1.0f; }}
)", arg("laneZero", cuda ? "    if (lane != 0) return;\n" : ""), arg("storeLse", lse.st("row", "l")),
                         arg("ignored", ignored), arg("vocab", vocab), arg("errorCode", errorCode),
                         arg("logit", logits.ld("base + t")));
    }));
  }
  {
    Builder k(name + "_mean");
    Tensor loss = k.param("loss", op.getLoss(), true);
    Tensor rowLoss = k.scratch("rowloss", 0, false), counted = k.scratch("counted", 1, false);
    std::string body = "  double s = 0.0, c = 0.0;\n  for (int64_t r = 0; r < " + S(n) +
                       "; ++r) { s += rowloss[r]; c += counted[r]; }\n  " +
                       loss.st("0", "(float)(s / c)") + "\n";
    out.steps.push_back(k.custom(body, body, 1, 1));
  }
  return out;
}

LoweredOp crossEntropyGrad(CrossEntropyGradOp op, const std::string &name, int) {
  int64_t n = shapeOf(op.getLogits())[0], vocab = shapeOf(op.getLogits())[1];
  std::optional<int64_t> ignore;
  if (auto attr = op.getIgnoreIndex()) ignore = static_cast<int64_t>(*attr);
  LoweredOp out;
  std::string count = S(n) + ".0f";
  if (ignore) {
    out.scratchBytes.push_back(4);
    Builder c(name + "_count");
    c.ids("targets", op.getTargets());
    Tensor cnt = c.scratch("count", 0, true);
    std::string body = "  float c = 0.0f;\n  for (int64_t r = 0; r < " + S(n) + "; ++r) c += targets[r] != " +
                       S(*ignore) + ";\n  count[0] = c;\n";
    out.steps.push_back(c.custom(body, body, 1, 1));
    count = "count[0]";
  }
  Builder k(name);
  Tensor d = k.param("dlogits", op.getResult(), true), g = k.param("g", op.getGrad(), false),
         logits = k.param("logits", op.getLogits(), false);
  k.ids("targets", op.getTargets());
  Tensor lse = k.param("lse", op.getLse(), false);
  if (ignore) k.scratch("count", 0, false);
  std::string V = S(vocab);
  LoweredStep step = k.elementwise(
      n * vocab, "    const int64_t row = i / " + V + ", col = i % " + V +
                     ";\n    const int64_t t = targets[row];\n    if (" +
                     (ignore ? "t == " + S(*ignore) : std::string("false")) + ") { " + d.st("i", "0.0f") +
                     " }\n    else " +
                     d.st("i", g.ld("0") + " / " + count + " * (expf(" + logits.ld("i") + " - " +
                                   lse.ld("row") + ") - (col == t ? 1.0f : 0.0f))") + "\n");
  // CPU: per row, the target, scale and log-sum-exp once, then a
  // vectorised pass over the vocabulary.
  step.kernel.cpuLoop = fmt::format(R"({parallel}  for (int64_t row = 0; row < {rows}; ++row) {{
    const int64_t t = targets[row], base = row * {vocab};
    const float scale = {ignored}{g} / {count}, l = {lse};
    for (int64_t col = 0; col < {vocab}; ++col) {store}
  }}
)", arg("parallel", cpuParallelFor(n * vocab)), arg("rows", n), arg("vocab", vocab),
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
