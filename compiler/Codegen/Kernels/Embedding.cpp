//===- Embedding.cpp - gather of table rows and its transpose ------------===//
//
// tl.gather reads a row per id; tl.scatter_add adds rows back, columns in
// parallel and rows in order on the CPU (deterministic, no atomics),
// atomics on CUDA. Ids out of range fail.
//
//===----------------------------------------------------------------------===//
#include "compiler/Codegen/GeneratorSupport.h"

#include <fmt/format.h>

namespace mlir::tl::codegen {
namespace {

using namespace detail;
using fmt::arg;

LoweredOp gather(GatherOp op, const std::string &name, const KernelContext &ctx) {
  const int errorCode = ctx.errorCode;
  int64_t rows = shapeOf(op.getTable())[0], width = shapeOf(op.getTable())[1];
  Builder k(name);
  k.k.checksErrors = true;
  k.param("out", op.getResult(), true);
  k.param("table", op.getTable(), false);
  k.ids("ids", op.getIds());
  LoweredOp out;
  out.steps.push_back(k.elementwise(ctx.count(op.getResult(), numel(op.getResult())), fmt::format(R"(    const int64_t r = ids[i / {width}];
    if (r < 0 || r >= {rows}) {{ TL_FAIL({errorCode}); out[i] = 0; }}
    else out[i] = table[r * {width} + i % {width}];
)", arg("width", width), arg("rows", rows), arg("errorCode", errorCode))));
  return out;
}

LoweredOp scatterAdd(ScatterAddOp op, const std::string &name, const KernelContext &ctx) {
  const int errorCode = ctx.errorCode;
  int64_t rows = shapeOf(op.getResult())[0], width = shapeOf(op.getResult())[1];
  int64_t n = numel(op.getIds());
  const Count ids = ctx.count(op.getIds(), n), elements = ctx.count(op.getIds(), n * width);
  LoweredOp out;
  LoweredStep zero;
  zero.zero = true;
  zero.operands.push_back({op.getResult()});
  out.steps.push_back(zero);
  Builder k(name);
  k.k.checksErrors = true;
  Tensor o = k.param("out", op.getResult(), true), u = k.param("upd", op.getUpdates(), false);
  k.ids("ids", op.getIds());
  std::string W = S(width);
  // CPU: columns in parallel, rows in order: deterministic, no atomics.
  std::string cpu = fmt::format(R"(#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < {width}; ++c)
    for (int64_t n = 0; n < {n}; ++n) {{
      const int64_t r = ids[n];
      if (r < 0 || r >= {rows}) {{ TL_FAIL({errorCode}); continue; }}
      {store}
    }}
)", arg("width", width), arg("n", ids.expr), arg("rows", rows), arg("errorCode", errorCode),
      arg("store", o.st("r * " + W + " + c", o.ld("r * " + W + " + c") + " + " + u.ld("n * " + W + " + c"))));
  std::string cuda = fmt::format(R"(  const int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= {count}) return;
  const int64_t r = ids[i / {width}];
  if (r < 0 || r >= {rows}) {{ TL_FAIL({errorCode}); return; }}
  {atomicAdd}(&out[r * {width} + i % {width}], {update});
)", arg("count", elements.expr), arg("width", width), arg("rows", rows), arg("errorCode", errorCode),
      arg("atomicAdd", o.bf16 ? "atomicAddBf16" : "atomicAdd"), arg("update", u.ld("i")));
  out.steps.push_back(k.custom(cpu, cuda, (n * width + 255) / 256, 256, 0, elements.batched));
  return out;
}

} // namespace

void attachEmbeddingKernels(MLIRContext &context) {
  attachGenerator<GatherOp, gather>(context);
  attachGenerator<ScatterAddOp, scatterAdd>(context);
}

} // namespace mlir::tl::codegen
