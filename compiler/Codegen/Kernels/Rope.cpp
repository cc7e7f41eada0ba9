//===- Rope.cpp - rotary embedding and its transpose ---------------------===//
//
// Elementwise over (row, column) with the cos/sin tables at the row's
// position; the CPU form walks each half of a row in its own loop. Rows are
// [..., T, D], or with `bthd` [..., T, H, D]: the H rows of a position share
// its table row.
//
//===----------------------------------------------------------------------===//
#include "compiler/Codegen/GeneratorSupport.h"

#include <fmt/format.h>

namespace mlir::tl::codegen {
namespace {

using namespace detail;
using fmt::arg;

LoweredOp rope(Value y, Value x, Value cos, Value sin, int64_t offset, bool transpose, bool bthd,
               const std::string &name, const KernelContext &ctx) {
  ArrayRef<int64_t> s = shapeOf(x);
  int64_t d = s.back(), t = s[s.size() - (bthd ? 3 : 2)], h = d / 2;
  // The row's position: rows / heads (1 without bthd) modulo T.
  const std::string heads = bthd ? " / " + S(s[s.size() - 2]) : "";
  Builder k(name);
  Tensor ty = k.param("y", y, true), tx = k.param("x", x, false), tc = k.param("cos", cos, false),
         tsn = k.param("sin", sin, false);
  std::string lo = transpose ? ty.st("i", tx.ld("i") + " * " + tc.ld("c + j") + " + " +
                                              tx.ld("i + " + S(h)) + " * " + tsn.ld("c + j + " + S(h)))
                             : ty.st("i", tx.ld("i") + " * " + tc.ld("c + j") + " - " +
                                              tx.ld("i + " + S(h)) + " * " + tsn.ld("c + j"));
  std::string hi = transpose ? ty.st("i", tx.ld("i") + " * " + tc.ld("c + j") + " - " +
                                              tx.ld("i - " + S(h)) + " * " + tsn.ld("c + j - " + S(h)))
                             : ty.st("i", tx.ld("i") + " * " + tc.ld("c + j") + " + " +
                                              tx.ld("i - " + S(h)) + " * " + tsn.ld("c + j"));
  LoweredOp out;
  LoweredStep step = k.elementwise(ctx.count(x, numel(x)), fmt::format(R"(    const int64_t j = i % {d};
    const int64_t c = ({offset} + (i / {d}{heads}) % {t}) * {d};
    if (j < {h}) {lo}
    else {hi}
)", arg("d", d), arg("offset", offset), arg("t", t), arg("h", h), arg("lo", lo), arg("hi", hi),
                                                                          arg("heads", heads)));
  // CPU: a row at a time, each half in its own branch-free loop.
  step.kernel.cpuLoop = fmt::format(R"({parallel}  for (int64_t row = 0; row < {rows}; ++row) {{
    const int64_t c = ({offset} + row{heads} % {t}) * {d};
    for (int64_t j = 0; j < {h}; ++j) {{
      const int64_t i = row * {d} + j;
      {lo}
    }}
    for (int64_t j = {h}; j < {d}; ++j) {{
      const int64_t i = row * {d} + j;
      {hi}
    }}
  }}
)", arg("parallel", cpuParallelFor(numel(x))), arg("rows", ctx.count(x, numel(x) / d).expr), arg("offset", offset), arg("t", t),
                                    arg("d", d), arg("h", h), arg("lo", lo), arg("hi", hi), arg("heads", heads));
  out.steps.push_back(step);
  return out;
}

LoweredOp ropeKernels(RopeOp r, const std::string &name, const KernelContext &ctx) {
  return rope(r.getResult(), r.getInput(), r.getCos(), r.getSin(), r.getOffset(), false, r.getBthd(), name, ctx);
}

LoweredOp ropeGradKernels(RopeGradOp r, const std::string &name, const KernelContext &ctx) {
  return rope(r.getResult(), r.getGrad(), r.getCos(), r.getSin(), r.getOffset(), true, r.getBthd(), name, ctx);
}

} // namespace

void attachRopeKernels(MLIRContext &context) {
  attachGenerator<RopeOp, ropeKernels>(context);
  attachGenerator<RopeGradOp, ropeGradKernels>(context);
}

} // namespace mlir::tl::codegen
